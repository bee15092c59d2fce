// The CUDA runtime calls resin makes, on the emulated GPU: devices (compute capability 9.0, as the
// H100 resin targets), device memory (host memory handed out and remembered), streams and events
// (work runs when it is issued, so a stream is always idle), copies with their direction checked,
// and the sticky-free "last error" of kernel launches.
//
// What a real GPU would refuse, this refuses with the same error: a copy whose direction does not
// match where its pointers live, a range that runs past an allocation, a freed or foreign pointer,
// a stream used on another device, an allocation beyond the emulated memory size.
#include <cuda_runtime.h>
#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "cuda_emulation/memory.h"
#include "cuda_emulation/runtime_state.h"

struct CUstream_st {
  int device;
  uint64_t last = 0;                              // the sequence number of its latest work
  std::map<const CUstream_st*, uint64_t> waited;  // other streams' work it was made to wait for
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when;
  bool recorded = false;
  const CUstream_st* stream = nullptr;  // where it was recorded, and that stream's work up to then
  uint64_t seq = 0;
  bool timing = true;  // not created with cudaEventDisableTiming
};

namespace resin::cuda_emulation {
namespace {

struct Block {
  size_t bytes;
  int device;
  const CUstream_st* toucher = nullptr;  // the stream whose work used the block last (null: none, or ordered)
  uint64_t touched = 0;                  // that work's sequence number
};

std::mutex g_mu;
std::map<uintptr_t, Block> g_blocks;  // by start address
// Stream order (order_access): a global sequence of work, and how far the host has waited for each
// stream. Destroyed streams are kept (their addresses must not come back as another stream's).
uint64_t g_seq = 0;
std::map<const CUstream_st*, uint64_t> g_host_waited;
std::vector<std::unique_ptr<CUstream_st>> g_streams;
std::map<void*, size_t> g_pinned;  // cudaMallocHost's blocks (host memory)

// The block holding address a (its end included: a zero-length range may start there), or
// g_blocks.end(); callers hold g_mu.
std::map<uintptr_t, Block>::iterator block_at(uintptr_t a) {
  auto it = g_blocks.upper_bound(a);
  if (it == g_blocks.begin()) return g_blocks.end();
  --it;
  return a <= it->first + it->second.bytes ? it : g_blocks.end();
}

// Guard zones around every block (256 bytes keep cudaMalloc's 256-byte alignment): a kernel that
// writes past its tensor's block leaves a mark that the launcher and cudaFree look for.
constexpr size_t kGuard = 256;
constexpr unsigned char kGuardByte = 0xA5;

bool zone_intact(const unsigned char* z) {
  for (size_t i = 0; i < kGuard; ++i)
    if (z[i] != kGuardByte) return false;
  return true;
}

unsigned char* guard_before(uintptr_t start);  // below, with the arena

bool block_guards_intact(uintptr_t start, const Block& b) {
  const unsigned char* p = guard_before(start);
  return zone_intact(p) && zone_intact(p + kGuard + b.bytes);
}
size_t g_in_use[64] = {};
thread_local int t_device = 0;
thread_local cudaError_t t_last = cudaSuccess;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// RESIN_CUDA_EMULATION_MEMORY_MB: the emulated memory of each device (default 16 GiB).
size_t memory_size() {
  static const size_t bytes = static_cast<size_t>(env_int("RESIN_CUDA_EMULATION_MEMORY_MB", 16384)) << 20;
  return bytes;
}

// Device memory of every device. Device addresses come from a reserved range that is never
// accessible (PROT_NONE), so host code that dereferences a device pointer faults, as it does with a
// GPU; the bytes live in a second range at a fixed distance, where the emulated kernels and
// libraries reach them through host_view(). Blocks are carved first-fit from a free list, 256-byte
// aligned, with their guard zones.
class Arena {
 public:
  Arena() {
    size_ = (memory_size() + (size_t{64} << 20)) * static_cast<size_t>(std::max(1, device_count()));
    device_ = reserve(PROT_NONE);
    storage_ = reserve(PROT_READ | PROT_WRITE);
    free_[0] = size_;
    install_fault_handler();
  }
  // Null when no range is free; the guard zones are [p - kGuard, p) and [p + bytes, p + bytes + kGuard).
  unsigned char* allocate(size_t bytes) {
    const size_t need = span(bytes);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second < need) continue;
      const size_t offset = it->first, rest = it->second - need;
      free_.erase(it);
      if (rest) free_[offset + need] = rest;
      return device_ + offset + kGuard;
    }
    return nullptr;
  }
  void release(const unsigned char* p, size_t bytes) {
    size_t offset = static_cast<size_t>(p - kGuard - device_), length = span(bytes);
    auto next = free_.lower_bound(offset);
    if (next != free_.end() && offset + length == next->first) {  // merge with the following range
      length += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {  // and with the preceding one
      auto prev = std::prev(next);
      if (prev->first + prev->second == offset) {
        prev->second += length;
        return;
      }
    }
    free_[offset] = length;
  }
  bool contains(const void* p) const {
    const auto* c = static_cast<const unsigned char*>(p);
    return c >= device_ && c < device_ + size_;
  }
  void* storage_of(const void* p) const {
    return storage_ + (static_cast<const unsigned char*>(p) - device_);
  }

 private:
  static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
  static size_t span(size_t bytes) { return round_up(bytes + 2 * kGuard, 256); }
  static void install_fault_handler();
  unsigned char* reserve(int protection) const {
    void* p = mmap(nullptr, size_, protection, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "emulated GPU: cannot reserve %zu bytes of address space\n", size_);
      std::abort();
    }
    return static_cast<unsigned char*>(p);
  }

  unsigned char* device_ = nullptr;   // the addresses handed out
  unsigned char* storage_ = nullptr;  // where their bytes are
  size_t size_ = 0;
  std::map<size_t, size_t> free_;  // offset -> length of the free ranges
};

Arena& arena() {
  static Arena a;
  return a;
}

// A host access to device memory says so before the process dies (else: a bare segfault).
void on_fault(int sig, siginfo_t* info, void*) {
  if (arena().contains(info->si_addr)) {
    static const char text[] =
        "emulated GPU: host code read or wrote device memory (a GPU would fault too). Backtrace:\n";
    (void)!write(2, text, sizeof text - 1);
    void* frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void Arena::install_fault_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
}

// The guard bytes of a block, by device address.
unsigned char* guard_before(uintptr_t start) {
  return static_cast<unsigned char*>(arena().storage_of(reinterpret_cast<void*>(start))) - kGuard;
}

bool valid_device(int d) { return d >= 0 && d < device_count(); }

cudaError_t fail(cudaError_t e) {
  t_last = e;
  return e;
}

cudaError_t unordered(const std::string& race) {
  std::fprintf(stderr, "emulated GPU: %s\n", race.c_str());
  return fail(cudaErrorLaunchFailure);
}

// The stream's device; the legacy default stream (null) is the current device's.
bool stream_device(cudaStream_t s, int& device) {
  device = s ? s->device : t_device;
  return valid_device(device);
}

// The errors the emulation returns, with the runtime's names and messages.
struct ErrorText {
  cudaError_t code;
  const char* name;
  const char* text;
};

ErrorText error_text(cudaError_t e) {
  static constexpr ErrorText kErrors[] = {
      {cudaSuccess, "cudaSuccess", "no error"},
      {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
      {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
      {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
      {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
      {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
      {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
      {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
      {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
      {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
  };
  for (const ErrorText& t : kErrors)
    if (t.code == e) return t;
  return {e, "cudaErrorUnknown", "unknown error (emulated GPU)"};
}

}  // namespace

int device_count() {
  static const int n = env_int("RESIN_CUDA_EMULATION_DEVICES", 1);
  return n < 0 ? 0 : (n > 64 ? 64 : n);
}

void* host_view(const void* p) {
  return p && arena().contains(p) ? arena().storage_of(p) : const_cast<void*>(p);
}

int device_of(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mu);
  const auto it = block_at(a);
  if (it == g_blocks.end()) return -1;
  return bytes <= it->first + it->second.bytes - a ? it->second.device : -1;
}

bool guards_intact(const void* p, std::string* where) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mu);
  const auto it = block_at(a);
  if (it == g_blocks.end() || block_guards_intact(it->first, it->second)) return true;
  if (where) {
    char text[96];
    std::snprintf(text, sizeof text, "the block of %zu bytes at %p", it->second.bytes,
                  reinterpret_cast<void*>(it->first));
    *where = text;
  }
  return false;
}

std::string order_access(cudaStream_t s, const std::vector<const void*>& pointers) {
  if (!s) return {};  // the legacy default stream waits for every stream
  std::lock_guard<std::mutex> lock(g_mu);
  auto waited_for = [&](const CUstream_st* other) {
    uint64_t w = 0;
    if (auto it = s->waited.find(other); it != s->waited.end()) w = it->second;
    if (auto it = g_host_waited.find(other); it != g_host_waited.end()) w = std::max(w, it->second);
    return w;
  };
  std::vector<Block*> blocks;
  for (const void* p : pointers) {
    const auto it = p ? block_at(reinterpret_cast<uintptr_t>(p)) : g_blocks.end();
    if (it == g_blocks.end()) continue;  // not device memory: checked elsewhere
    Block& b = it->second;
    if (b.toucher && b.toucher != s && b.touched > waited_for(b.toucher)) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "the block of %zu bytes at %p was last used by work on another stream that this stream "
                    "does not wait for (a race on a GPU)",
                    b.bytes, reinterpret_cast<void*>(it->first));
      return text;
    }
    blocks.push_back(&b);
  }
  s->last = ++g_seq;
  for (Block* b : blocks) {
    b->toucher = s;
    b->touched = s->last;
  }
  return {};
}

int current_device() { return t_device; }

void record_launch_error(cudaError_t e) { t_last = e; }

bool stream_on_current_device(cudaStream_t s) {
  int d = 0;
  return stream_device(s, d) && d == t_device;
}

int device_of_stream(cudaStream_t s) {
  int d = 0;
  return stream_device(s, d) ? d : -1;
}

}  // namespace resin::cuda_emulation

using namespace resin::cuda_emulation;

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = device_count();
  return device_count() > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device) {
  if (!valid_device(device)) return fail(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return fail(cudaErrorInvalidValue);
  if (!valid_device(device)) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      return cudaSuccess;
    case cudaDevAttrWarpSize:
      *value = 32;
      return cudaSuccess;
    default:
      return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaDeviceSynchronize() {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& st : g_streams)
    if (st->device == t_device) g_host_waited[st.get()] = st->last;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mu);
  if (size > memory_size() - g_in_use[t_device]) return fail(cudaErrorMemoryAllocation);
  unsigned char* p = arena().allocate(size);
  if (!p) return fail(cudaErrorMemoryAllocation);
  const auto start = reinterpret_cast<uintptr_t>(p);
  std::memset(guard_before(start), kGuardByte, kGuard);
  std::memset(guard_before(start) + kGuard + size, kGuardByte, kGuard);
  g_blocks[start] = Block{size, t_device};
  g_in_use[t_device] += size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_blocks.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == g_blocks.end()) return fail(cudaErrorInvalidValue);  // not a block start: foreign or freed
  const bool intact = block_guards_intact(it->first, it->second);
  if (!intact)
    std::fprintf(stderr,
                 "emulated GPU: something wrote past the block of %zu bytes at %p (found at cudaFree)\n",
                 it->second.bytes, ptr);
  g_in_use[it->second.device] -= it->second.bytes;
  arena().release(static_cast<const unsigned char*>(ptr), it->second.bytes);
  g_blocks.erase(it);
  return intact ? cudaSuccess : fail(cudaErrorIllegalAddress);
}

// Page-locked host memory is host memory to the emulation; freeing anything else is an error.
cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = size == 0 ? nullptr : std::malloc(size);
  if (size != 0 && !*ptr) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(g_mu);
  if (*ptr) g_pinned[*ptr] = size;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_pinned.erase(ptr) == 0) return fail(cudaErrorInvalidValue);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  if (!free || !total) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mu);
  *total = memory_size();
  *free = memory_size() - g_in_use[t_device];
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  int sd = 0;
  if (!stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  const int dst_dev = device_of(dst, count), src_dev = device_of(src, count);
  bool ok = false;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      ok = src_dev < 0 && device_of(src, 1) < 0 && dst_dev >= 0;
      break;
    case cudaMemcpyDeviceToHost:
      ok = src_dev >= 0 && dst_dev < 0 && device_of(dst, 1) < 0;
      break;
    case cudaMemcpyDeviceToDevice:
      ok = src_dev >= 0 && dst_dev >= 0;
      break;
    case cudaMemcpyHostToHost:
      ok = device_of(src, 1) < 0 && device_of(dst, 1) < 0;
      break;
    case cudaMemcpyDefault:  // direction from the pointers; each wholly inside a block or not in one
      ok = (src_dev >= 0 || device_of(src, 1) < 0) && (dst_dev >= 0 || device_of(dst, 1) < 0);
      break;
  }
  if (!ok) return fail(cudaErrorInvalidValue);
  if (const std::string race = order_access(stream, {dst, src}); !race.empty()) return unordered(race);
  std::memmove(host_view(dst), host_view(src), count);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, count, kind, nullptr);
}

cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                                cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (!valid_device(dst_device) || !valid_device(src_device)) return fail(cudaErrorInvalidDevice);
  int sd = 0;
  if (!stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  if (device_of(dst, count) != dst_device || device_of(src, count) != src_device)
    return fail(cudaErrorInvalidValue);
  if (const std::string race = order_access(stream, {dst, src}); !race.empty()) return unordered(race);
  std::memmove(host_view(dst), host_view(src), count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  int sd = 0;
  if (!stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  if (device_of(ptr, count) < 0) return fail(cudaErrorInvalidValue);
  if (const std::string race = order_access(stream, {ptr}); !race.empty()) return unordered(race);
  std::memset(host_view(ptr), value, count);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  if (!stream) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mu);
  g_streams.push_back(std::make_unique<CUstream_st>());
  g_streams.back()->device = t_device;
  *stream = g_streams.back().get();
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(g_mu);
  g_host_waited[stream] = stream->last;  // its work is over, as far as the emulation is concerned
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  int sd = 0;
  if (!stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  if (stream) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_host_waited[stream] = stream->last;
  }
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (!event) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st{};
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming)) return fail(cudaErrorInvalidValue);
  const cudaError_t e = cudaEventCreate(event);
  if (e == cudaSuccess) (*event)->timing = !(flags & cudaEventDisableTiming);
  return e;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  int sd = 0;
  if (!event || !stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  event->when = std::chrono::steady_clock::now();
  event->recorded = true;
  std::lock_guard<std::mutex> lock(g_mu);
  event->stream = stream;
  event->seq = stream ? stream->last : 0;
  return cudaSuccess;
}

// Work on an emulated stream is done when it is called, so the wait is a check of its arguments.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  int sd = 0;
  if (!event || !stream_device(stream, sd)) return fail(cudaErrorInvalidResourceHandle);
  if (flags != 0) return fail(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_mu);
  if (stream && event->stream && event->stream != stream) {
    uint64_t& w = stream->waited[event->stream];
    w = std::max(w, event->seq);
  }
  return cudaSuccess;
}

// Work on an emulated stream is done when it is called: an event has always completed, and the host
// that learns so has waited for its stream up to it.
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  std::lock_guard<std::mutex> lock(g_mu);
  if (event->stream) {
    uint64_t& w = g_host_waited[event->stream];
    w = std::max(w, event->seq);
  }
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return fail(cudaErrorInvalidValue);
  if (!start || !end) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  if (!start->timing || !end->timing) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return t_last; }

const char* cudaGetErrorName(cudaError_t e) { return error_text(e).name; }

const char* cudaGetErrorString(cudaError_t e) { return error_text(e).text; }

}  // extern "C"
