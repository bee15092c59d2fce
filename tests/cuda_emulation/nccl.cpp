// The NCCL calls resin makes (distributed/nccl_communicator.cpp), on the emulated GPU: unique ids,
// communicators with blocking or non-blocking initialisation, all-reduce (sum) and broadcast,
// asynchronous errors, abort and destroy. Ranks may be threads or processes of one machine; they
// meet in a directory named by the unique id (under RESIN_NCCL_EMULATION_DIR, else TMPDIR, else
// /tmp): a rank joins by writing join.<rank> (its GPU and process id), and contributes to its n-th
// collective by writing c<n>.<rank> (what the collective is, and its data); files appear by rename,
// so a rank never reads half a file. Every rank reduces the same files in rank order, so all get
// bit-identical results.
//
// What real NCCL refuses or reports, this does too: two ranks on one GPU, buffers that are not device
// memory of the communicator's GPU, a stream of another GPU, and — as an asynchronous error that
// ncclCommGetAsyncError reports — a rank that aborted or whose process exited. Stricter than NCCL
// (which would hang or mix up data): ranks that disagree on a collective's kind, type, size or root
// get an asynchronous ncclInvalidUsage. Like every emulated stream, a collective runs when it is
// issued: the call returns once every rank has contributed, or after RESIN_NCCL_EMULATION_TIMEOUT
// seconds (else RESIN_DIST_TIMEOUT's, else 60) with an asynchronous error, where a GPU would keep
// waiting until the caller gave up and aborted.
#include <cuda_runtime.h>
#include <nccl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cuda_emulation/memory.h"
#include "cuda_emulation/runtime_state.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ncclComm {
  fs::path dir;
  int rank = 0, nranks = 1, device = 0;
  // ncclInProgress until every rank has joined; then ncclSuccess, or the first (asynchronous) error.
  ncclResult_t state = ncclInProgress;
  std::string last_error;
  Clock::time_point joined_at;
  std::vector<pid_t> pids;  // of every rank, once all have joined
  uint64_t collectives = 0;
};

namespace resin::cuda_emulation {
namespace {

constexpr char kIdMagic[] = "resin-emulated-nccl";  // in every unique id this emulation hands out
constexpr size_t kIdRandomBytes = 16;

thread_local std::string t_last_error;  // ncclGetLastError(nullptr): a call that had no communicator

ncclResult_t fail(ncclComm* c, ncclResult_t r, const std::string& why) {
  (c ? c->last_error : t_last_error) = "emulated NCCL: " + why;
  return r;
}

// An error found while a collective ran: the communicator is unusable from now on, as after an
// asynchronous NCCL error; the call itself returns success.
ncclResult_t break_comm(ncclComm* c, ncclResult_t r, const std::string& why) {
  if (c->state == ncclSuccess || c->state == ncclInProgress) {
    c->state = r;
    fail(c, r, why);
  }
  return ncclSuccess;
}

// RESIN_NCCL_EMULATION_TIMEOUT, else the communicator's (RESIN_DIST_TIMEOUT), else 60 s.
double timeout_seconds() {
  for (const char* var : {"RESIN_NCCL_EMULATION_TIMEOUT", "RESIN_DIST_TIMEOUT"})
    if (const char* v = std::getenv(var); v && std::atof(v) > 0) return std::atof(v);
  return 60;
}

// Waiting ranks poll the directory: from 200 us up to 5 ms between looks, so that a long wait leaves
// the cores to the rank being waited for.
void pause(int looks) {
  std::this_thread::sleep_for(std::chrono::microseconds(std::min(5000, 200 << std::min(looks / 16, 5))));
}

fs::path base_dir() {
  for (const char* var : {"RESIN_NCCL_EMULATION_DIR", "TMPDIR"})
    if (const char* v = std::getenv(var); v && *v) return v;
  return "/tmp";
}

fs::path meeting_dir(const ncclUniqueId& id) {
  static const char* digits = "0123456789abcdef";
  std::string name = "resin-nccl-emulation-";
  for (size_t i = 0; i < kIdRandomBytes; ++i) {
    const auto b = static_cast<unsigned char>(id.internal[i]);
    name += digits[b >> 4];
    name += digits[b & 15];
  }
  return base_dir() / name;
}

bool write_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()))) return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

bool read_whole(const fs::path& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

fs::path rank_file(const ncclComm* c, const std::string& what, int rank) {
  return c->dir / (what + "." + std::to_string(rank));
}

// False once the process is gone (an unreaped zombie counts as gone: it will never write again).
bool process_alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Why the group cannot go on (a rank aborted or destroyed its communicator, or its process exited);
// empty while it can. A caller checks for what it waits for after this, not before: a rank may
// deliver its part and leave in between.
std::string peer_failure(const ncclComm* c) {
  for (int r = 0; r < c->nranks; ++r) {
    if (r == c->rank) continue;
    if (fs::exists(rank_file(c, "abort", r)))
      return "rank " + std::to_string(r) + " aborted its communicator";
    if (fs::exists(rank_file(c, "bye", r)))
      return "rank " + std::to_string(r) + " destroyed its communicator";
  }
  for (size_t r = 0; r < c->pids.size(); ++r)
    if (static_cast<int>(r) != c->rank && !process_alive(c->pids[r]))
      return "rank " + std::to_string(r) + " (process " + std::to_string(c->pids[r]) + ") exited";
  return {};
}

// Completes initialisation once every rank has joined (or finds two ranks on one GPU, which every
// rank sees alike); while some are missing, reports a rank that aborted or the timeout.
void poll_init(ncclComm* c) {
  if (c->state != ncclInProgress) return;
  const std::string failure = peer_failure(c);
  std::vector<int> devices(static_cast<size_t>(c->nranks));
  std::vector<pid_t> pids(devices.size());
  std::string missing;
  for (int r = 0; r < c->nranks; ++r) {
    std::string text;
    long device = -1, pid = -1;
    if (!read_whole(rank_file(c, "join", r), text) ||
        std::sscanf(text.c_str(), "%ld %ld", &device, &pid) != 2) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      continue;
    }
    devices[static_cast<size_t>(r)] = static_cast<int>(device);
    pids[static_cast<size_t>(r)] = static_cast<pid_t>(pid);
  }
  if (!missing.empty()) {
    if (!failure.empty())
      break_comm(c, ncclRemoteError, failure + " before the communicator was complete");
    else if (std::chrono::duration<double>(Clock::now() - c->joined_at).count() > timeout_seconds())
      break_comm(c, ncclSystemError,
                 "rank(s) " + missing + " did not join within " + std::to_string(timeout_seconds()) + " s");
    return;
  }
  for (int a = 0; a < c->nranks; ++a)
    for (int b = a + 1; b < c->nranks; ++b)
      if (devices[static_cast<size_t>(a)] == devices[static_cast<size_t>(b)]) {
        break_comm(c, ncclInvalidUsage,
                   "Duplicate GPU detected: rank " + std::to_string(a) + " and rank " + std::to_string(b) +
                       " both on CUDA device " + std::to_string(devices[static_cast<size_t>(a)]));
        return;
      }
  c->pids = std::move(pids);
  c->state = ncclSuccess;
}

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
      return 1;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64:
      return 8;
    default:
      return 0;  // half types: not emulated
  }
}

template <class T>
void accumulate(std::string& into, const char* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    T a, b;
    std::memcpy(&a, into.data() + i * sizeof(T), sizeof(T));
    std::memcpy(&b, x + i * sizeof(T), sizeof(T));
    a = static_cast<T>(a + b);
    std::memcpy(into.data() + i * sizeof(T), &a, sizeof(T));
  }
}

void accumulate(ncclDataType_t t, std::string& into, const char* x, size_t n) {
  switch (t) {
    case ncclInt8:
      return accumulate<int8_t>(into, x, n);
    case ncclUint8:
      return accumulate<uint8_t>(into, x, n);
    case ncclInt32:
      return accumulate<int32_t>(into, x, n);
    case ncclUint32:
      return accumulate<uint32_t>(into, x, n);
    case ncclFloat32:
      return accumulate<float>(into, x, n);
    case ncclInt64:
      return accumulate<int64_t>(into, x, n);
    case ncclUint64:
      return accumulate<uint64_t>(into, x, n);
    case ncclFloat64:
      return accumulate<double>(into, x, n);
    default:
      return;
  }
}

// What one rank says its collective is; every rank must say the same.
struct Header {
  int32_t kind;  // 0 all-reduce, 1 broadcast
  int32_t type;
  uint64_t count;
  int32_t root;
  int32_t reserved;
};

std::string describe(const Header& h) {
  return std::string(h.kind == 0 ? "all-reduce" : "broadcast from rank " + std::to_string(h.root)) + " of " +
         std::to_string(h.count) + " elements of type " + std::to_string(h.type);
}

ncclResult_t collective(int kind, const void* send, void* recv, size_t count, ncclDataType_t type,
                        ncclRedOp_t op, int root, ncclComm* c, cudaStream_t stream) {
  if (!c) return fail(nullptr, ncclInvalidArgument, "null communicator");
  poll_init(c);
  if (c->state == ncclInProgress)
    return fail(c, ncclInvalidUsage, "a collective on a communicator whose initialisation has not completed");
  if (c->state != ncclSuccess) return c->state;
  const size_t size = type_size(type);
  if (size == 0)
    return fail(c, ncclInvalidArgument, "data type " + std::to_string(type) + " is not emulated");
  if (kind == 0 && op != ncclSum) return fail(c, ncclInvalidArgument, "only ncclSum is emulated");
  if (kind == 1 && (root < 0 || root >= c->nranks))
    return fail(c, ncclInvalidArgument,
                "root " + std::to_string(root) + " outside [0, " + std::to_string(c->nranks) + ")");
  if (device_of_stream(stream) != c->device)
    return fail(c, ncclInvalidArgument,
                "the stream is not on the communicator's CUDA device " + std::to_string(c->device));
  if (count == 0) return ncclSuccess;
  const size_t bytes = count * size;
  const bool sends = kind == 0 || c->rank == root;
  if (sends && device_of(send, bytes) != c->device)
    return fail(c, ncclInvalidArgument,
                "sendbuff is not device memory of CUDA device " + std::to_string(c->device));
  if (device_of(recv, bytes) != c->device)
    return fail(c, ncclInvalidArgument,
                "recvbuff is not device memory of CUDA device " + std::to_string(c->device));

  if (const std::string race = order_access(stream, {sends ? send : nullptr, recv}); !race.empty())
    return fail(c, ncclInvalidUsage, "a buffer of the collective: " + race);

  const std::string name = "c" + std::to_string(++c->collectives);
  const Header mine{kind, static_cast<int32_t>(type), count, kind == 1 ? root : 0, 0};
  std::string payload(reinterpret_cast<const char*>(&mine), sizeof mine);
  if (sends) payload.append(static_cast<const char*>(host_view(send)), bytes);
  if (!write_atomically(rank_file(c, name, c->rank), payload))
    return break_comm(c, ncclSystemError, "could not write to " + c->dir.string());

  // Wait for every rank's contribution.
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds());
  for (int looks = 0;; ++looks) {
    const std::string failure = looks % 8 == 0 ? peer_failure(c) : std::string();
    bool all = true;
    for (int r = 0; r < c->nranks && all; ++r) all = fs::exists(rank_file(c, name, r));
    if (all) break;
    if (!failure.empty()) return break_comm(c, ncclRemoteError, failure);
    if (Clock::now() > deadline)
      return break_comm(c, ncclRemoteError,
                        "not every rank reached collective #" + std::to_string(c->collectives) + " within " +
                            std::to_string(timeout_seconds()) + " s");
    pause(looks);
  }
  // Every rank has finished its previous collective (it wrote this one's file), so that file of mine
  // is read by nobody any more.
  if (c->collectives > 1) {
    std::error_code ec;
    fs::remove(rank_file(c, "c" + std::to_string(c->collectives - 1), c->rank), ec);
  }
  std::string result;
  for (int r = 0; r < c->nranks; ++r) {
    std::string file;
    if (!read_whole(rank_file(c, name, r), file) || file.size() < sizeof(Header))
      return break_comm(c, ncclSystemError, "could not read rank " + std::to_string(r) + "'s contribution");
    Header theirs;
    std::memcpy(&theirs, file.data(), sizeof theirs);
    if (std::memcmp(&theirs, &mine, sizeof mine) != 0)
      return break_comm(c, ncclInvalidUsage,
                        "ranks disagree on collective #" + std::to_string(c->collectives) + ": rank " +
                            std::to_string(c->rank) + " runs " + describe(mine) + ", rank " +
                            std::to_string(r) + " " + describe(theirs));
    const bool has_data = kind == 0 || r == root;
    if (has_data && file.size() != sizeof(Header) + bytes)
      return break_comm(c, ncclSystemError, "rank " + std::to_string(r) + "'s contribution is truncated");
    if (!has_data) continue;
    if (result.empty())
      result = file.substr(sizeof(Header));
    else
      accumulate(type, result, file.data() + sizeof(Header), count);
  }
  std::memcpy(host_view(recv), result.data(), bytes);
  return ncclSuccess;
}

const char* result_text(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
      return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
      return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument:
      return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
      return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

}  // namespace
}  // namespace resin::cuda_emulation

using namespace resin::cuda_emulation;

extern "C" {

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (!id) return fail(nullptr, ncclInvalidArgument, "null unique id");
  std::memset(id->internal, 0, sizeof id->internal);
  std::random_device entropy;
  for (size_t i = 0; i < kIdRandomBytes; ++i) id->internal[i] = static_cast<char>(entropy() & 0xff);
  std::memcpy(id->internal + kIdRandomBytes, kIdMagic, sizeof kIdMagic);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                                    ncclConfig_t* config) {
  if (!comm) return fail(nullptr, ncclInvalidArgument, "null communicator pointer");
  *comm = nullptr;
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return fail(nullptr, ncclInvalidArgument,
                "rank " + std::to_string(rank) + " of " + std::to_string(nranks) + " ranks");
  if (std::memcmp(id.internal + kIdRandomBytes, kIdMagic, sizeof kIdMagic) != 0)
    return fail(nullptr, ncclInvalidArgument, "the unique id was not made by ncclGetUniqueId");
  auto* c = new ncclComm;
  c->dir = meeting_dir(id);
  c->rank = rank;
  c->nranks = nranks;
  c->device = current_device();
  c->joined_at = Clock::now();
  std::error_code ec;
  fs::create_directories(c->dir, ec);
  const fs::path join = rank_file(c, "join", rank);
  if (fs::exists(join)) {
    delete c;
    return fail(nullptr, ncclInvalidUsage, "rank " + std::to_string(rank) + " joined this unique id twice");
  }
  if (!write_atomically(join, std::to_string(c->device) + " " + std::to_string(::getpid()))) {
    const std::string dir = c->dir.string();
    delete c;
    return fail(nullptr, ncclSystemError, "could not write to " + dir);
  }
  *comm = c;
  const bool blocking = !config || config->blocking != 0;
  if (blocking)
    for (int looks = 0; c->state == ncclInProgress; ++looks) {
      poll_init(c);
      pause(looks);
    }
  poll_init(c);
  return c->state;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  return ncclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (!comm || !async_error) return fail(comm, ncclInvalidArgument, "null argument to ncclCommGetAsyncError");
  poll_init(comm);
  *async_error = comm->state;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  return collective(0, sendbuff, recvbuff, count, datatype, op, 0, comm, stream);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                           int root, ncclComm_t comm, cudaStream_t stream) {
  return collective(1, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream);
}

// A rank leaves by writing `how`.<rank> (abort or bye; peers waiting for it get an asynchronous
// ncclRemoteError). Once every rank has left nobody reads the directory: the rank that renames it
// away (only one can) removes it.
void leave(ncclComm* c, const char* how) {
  write_atomically(rank_file(c, how, c->rank), "");
  for (int r = 0; r < c->nranks; ++r)
    if (!fs::exists(rank_file(c, "bye", r)) && !fs::exists(rank_file(c, "abort", r))) return;
  const fs::path doomed =
      c->dir.string() + ".removing." + std::to_string(::getpid()) + "." + std::to_string(c->rank);
  std::error_code ec;
  fs::rename(c->dir, doomed, ec);
  if (!ec) fs::remove_all(doomed, ec);
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
  leave(comm, "abort");
  delete comm;
  return ncclSuccess;
}

// Operations complete when they are called here, so there is nothing left to flush.
ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (!comm) return fail(nullptr, ncclInvalidArgument, "null communicator");
  poll_init(comm);
  return comm->state == ncclInProgress
             ? fail(comm, ncclInvalidUsage, "ncclCommFinalize before the init completed")
             : comm->state;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return fail(nullptr, ncclInvalidArgument, "null communicator");
  leave(comm, "bye");
  delete comm;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) { return result_text(result); }

const char* ncclGetLastError(ncclComm_t comm) {
  return comm ? comm->last_error.c_str() : t_last_error.c_str();
}

}  // extern "C"
