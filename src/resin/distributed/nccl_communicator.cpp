#include "resin/distributed/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "resin/core/cuda.h"

namespace resin::distributed {

namespace {

using Clock = std::chrono::steady_clock;

void cuda_check(cudaError_t e, const char* what) {
  RESIN_CHECK(e == cudaSuccess, "nccl: ", what, " failed: ", cudaGetErrorString(e));
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i64: return ncclInt64;
    default: RESIN_FAIL("nccl: no reduction for dtype ", t);
  }
}

// A buffer that grows (to at least 1 MiB, then doubling). Outgrown blocks are kept until the
// communicator is gone: freeing one waits for the whole GPU, which a stalled collective would turn
// into a hang that no timeout ends.
class StagingBuffer {
 public:
  using Alloc = cudaError_t (*)(void**, size_t);
  using Release = cudaError_t (*)(void*);
  StagingBuffer(Alloc alloc, Release release) : alloc_(alloc), release_(release) {}
  StagingBuffer(const StagingBuffer&) = delete;
  StagingBuffer& operator=(const StagingBuffer&) = delete;
  ~StagingBuffer() {
    if (p_) release_(p_);
    for (void* q : retired_) release_(q);
  }
  void* at_least(size_t bytes) {
    if (bytes > bytes_) {
      const size_t grown = std::max({bytes, size_t{1} << 20, 2 * bytes_});
      void* q = nullptr;
      cuda_check(alloc_(&q, grown), "allocating a staging buffer");
      if (p_) retired_.push_back(p_);
      p_ = q;
      bytes_ = grown;
    }
    return p_;
  }

 private:
  Alloc alloc_;
  Release release_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
  std::vector<void*> retired_;
};

// What the communicator and its pending operations share: the NCCL communicator, its stream, and
// the first failure (after which the group is unusable).
struct Shared {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0, rank = 0, size = 1;
  std::chrono::milliseconds timeout{60000};
  std::mutex mu;  // serialises enqueueing and polling
  std::string broken;
  // Host tensors are staged through pinned host memory and a device buffer, so that their copies
  // are asynchronous and a stalled collective ends in the timeout (a copy from or to pageable
  // memory would block the host until the stream got there, possibly forever). One host
  // operation at a time (host_mu) owns both buffers.
  std::mutex host_mu;
  StagingBuffer staging{cudaMalloc, cudaFree};         // device
  StagingBuffer pinned{cudaMallocHost, cudaFreeHost};  // host

  // `peers`: the failure may be another rank's (a timeout, a remote or system error), not this one's.
  [[noreturn]] void fail(const char* op, const std::string& why, bool peers = true) {
    if (broken.empty()) broken = why;
    if (!peers) RESIN_FAIL("distributed: ", op, " failed on rank ", rank, " of ", size, ": ", why);
    RESIN_FAIL("distributed: ", op, " failed on rank ", rank, " of ", size, ": ", why,
               ". Another rank probably exited or stopped responding (timeout ", timeout.count() / 1000.0, " s).");
  }
  // NCCL's error as text; its "invalid usage" is most often two ranks on one GPU.
  std::string describe(ncclResult_t r) const {
    std::string why = std::string(ncclGetErrorString(r)) + " " + ncclGetLastError(comm);
    if (r == ncclInvalidUsage)
      why += " (NCCL needs a GPU of its own for every rank; --dist-backend gloo lets ranks share one)";
    return why;
  }
  // Aborts the communicator and fails with NCCL's result r.
  [[noreturn]] void fail_with(const char* op, ncclResult_t r) {
    const std::string why = describe(r);
    abort();
    fail(op, why, r == ncclRemoteError || r == ncclSystemError);
  }
  void check_usable(const char* op) {
    if (!broken.empty() || !comm)
      RESIN_FAIL("distributed: ", op, " not run on rank ", rank, ": the group failed earlier (", broken, ")");
  }
  void abort() {
    if (comm) ncclCommAbort(comm);
    comm = nullptr;
  }
  // Aborts on an asynchronous error of the communicator. After an abort (another operation failed)
  // nothing the group ran is to be trusted.
  void check_async(const char* op) {
    if (!broken.empty() || !comm) fail(op, "the group failed earlier (" + broken + ")");
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) fail_with(op, async);
  }
  // Polls `done` while watching NCCL's asynchronous error and the deadline; aborts on either. Also
  // after `done`: an initialisation can finish in an error, and an operation whose group failed
  // meanwhile (a peer aborted) may have finished without valid data.
  template <class Done>
  void poll(const char* op, Done done) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      check_async(op);
      if (Clock::now() > deadline) {
        abort();
        fail(op, "timed out after " + std::to_string(timeout.count() / 1000.0) + " s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    check_async(op);
  }
  // A non-blocking communicator may answer ncclInProgress: wait until the call took effect.
  void check(ncclResult_t r, const char* op) {
    if (r == ncclInProgress) {
      poll(op, [&] {
        ncclResult_t s = ncclSuccess;
        ncclCommGetAsyncError(comm, &s);
        return s != ncclInProgress;
      });
      return;
    }
    if (r != ncclSuccess) fail_with(op, r);
  }
  void wait_event(cudaEvent_t ev, const char* op) {
    poll(op, [&] {
      const cudaError_t q = cudaEventQuery(ev);
      if (q == cudaSuccess) return true;
      if (q != cudaErrorNotReady) fail(op, cudaGetErrorString(q));
      return false;
    });
  }
  void* staging_for(size_t bytes) { return staging.at_least(bytes); }
  void* pinned_for(size_t bytes) { return pinned.at_least(bytes); }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<Shared> s, const char* op, Tensor keep) : s_(std::move(s)), op_(op), keep_(std::move(keep)) {
    cuda_check(cudaEventCreate(&start_), "cudaEventCreate");
    cuda_check(cudaEventCreate(&end_), "cudaEventCreate");
  }
  // Dropped without wait(): resin's stream of that GPU waits (on the GPU) for the operation before
  // the tensor goes, so that the caching allocator cannot hand its block to new work NCCL still
  // reads or writes.
  ~NcclWork() override {
    if (!done_ && keep_.defined() && keep_.device().type == DeviceType::cuda) {
      try {
        resin::cuda::order_device_work_after(end_, s_->device);
      } catch (...) {  // the device failed: nothing will run on it any more
      }
    }
    keep_ = Tensor();
    cudaEventDestroy(start_);
    cudaEventDestroy(end_);
  }
  cudaEvent_t start() const { return start_; }
  cudaEvent_t end() const { return end_; }

  void wait() override {
    std::lock_guard<std::mutex> lk(s_->mu);
    if (!done_) {
      done_ = true;
      try {
        cuda_check(cudaSetDevice(s_->device), "cudaSetDevice");
        s_->wait_event(end_, op_);
        float ms = 0;
        cudaEventElapsedTime(&ms, start_, end_);
        seconds_ = ms / 1000.0;
      } catch (const Error& e) {
        error_ = e.what();
      }
      keep_ = Tensor();
    }
    if (!error_.empty()) throw Error(error_);
  }
  bool completed() const override {
    std::lock_guard<std::mutex> lk(s_->mu);
    return done_ || cudaEventQuery(end_) == cudaSuccess;
  }
  double run_seconds() const override {
    std::lock_guard<std::mutex> lk(s_->mu);
    return seconds_;
  }

 private:
  std::shared_ptr<Shared> s_;
  const char* op_;
  Tensor keep_;
  cudaEvent_t start_ = nullptr, end_ = nullptr;
  bool done_ = false;
  std::string error_;
  double seconds_ = 0;
};

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(std::shared_ptr<Shared> s, std::shared_ptr<Store> store)
      : s_(std::move(s)), store_(std::move(store)) {}
  // A healthy communicator is finalized (its pending work flushed, within the timeout) and then
  // destroyed; one with an asynchronous error, even one nobody waited for, or whose finalize fails
  // is aborted (ncclCommDestroy would return the error and leak, or block).
  ~NcclCommunicator() override {
    std::lock_guard<std::mutex> lk(s_->mu);
    cudaSetDevice(s_->device);
    ncclResult_t async = ncclSuccess;
    if (s_->comm) ncclCommGetAsyncError(s_->comm, &async);
    if (s_->comm && s_->broken.empty() && async == ncclSuccess) {
      try {
        s_->check(ncclCommFinalize(s_->comm), "ncclCommFinalize");  // aborts on an error or the timeout
        if (s_->comm) ncclCommDestroy(s_->comm);
        s_->comm = nullptr;  // destroyed, even if it said otherwise: never to be aborted after that
      } catch (...) {        // a destructor throws nothing
      }
    }
    s_->abort();
    // The staging buffers go with Shared (after the last Work); the stream goes now: nothing of
    // this communicator's runs on it any more.
    if (s_->stream) cudaStreamDestroy(s_->stream);
    s_->stream = nullptr;
  }

  int rank() const override { return s_->rank; }
  int size() const override { return s_->size; }
  std::string backend() const override { return "nccl"; }
  Device device() const override { return Device::cuda(s_->device); }
  std::chrono::milliseconds timeout() const override { return s_->timeout; }

  WorkPtr all_reduce_async(const Tensor& t) override {
    check_collective_tensor(t, "all_reduce", true);
    const ncclDataType_t type = nccl_type(t.dtype());
    const auto n = static_cast<size_t>(t.numel());
    return run("all_reduce", t, [&](void* buf) {
      s_->check(ncclAllReduce(buf, buf, n, type, ncclSum, s_->comm, s_->stream), "all_reduce");
    });
  }

  WorkPtr broadcast_async(const Tensor& t, int root) override {
    check_collective_tensor(t, "broadcast", false);
    RESIN_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " outside [0, ", size(), ")");
    const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    return run("broadcast", t, [&](void* buf) {
      s_->check(ncclBroadcast(buf, buf, bytes, ncclChar, root, s_->comm, s_->stream), "broadcast");
    });
  }

  void barrier() override {
    Tensor one = zeros({1});
    all_reduce(one);
  }

 private:
  // Enqueues `op` on the stream between two events; host tensors go through the staging buffer
  // and are waited for here.
  template <class Op>
  WorkPtr run(const char* name, const Tensor& t, Op op) {
    const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    if (bytes == 0) return completed_work();
    const bool host = t.device().type == DeviceType::cpu;
    RESIN_CHECK(host || t.device() == device(), "nccl ", name, ": the tensor is on ", t.device(),
                " but this rank's GPU is ", device());
    std::unique_lock<std::mutex> host_lk(s_->host_mu, std::defer_lock);
    if (host) host_lk.lock();  // the staging buffers are this operation's until it has completed
    std::shared_ptr<NcclWork> w;
    void* pinned = nullptr;
    {
      std::lock_guard<std::mutex> lk(s_->mu);
      s_->check_usable(name);
      cuda_check(cudaSetDevice(s_->device), "cudaSetDevice");
      // A device tensor was written by work queued on resin's stream of that GPU; NCCL's stream waits
      // for that work on the GPU (the host goes on: DDP's next bucket overlaps backward).
      if (!host) resin::cuda::order_after_device_work(s_->stream, s_->device);
      w = std::make_shared<NcclWork>(s_, name, t);
      void* buf = host ? s_->staging_for(bytes) : t.raw_data();
      if (host) {
        pinned = s_->pinned_for(bytes);
        std::memcpy(pinned, t.raw_data(), bytes);
      }
      cuda_check(cudaEventRecord(w->start(), s_->stream), "cudaEventRecord");
      // From here on the stream holds this operation's first steps: a failure leaves them queued
      // (a copy may still write the buffers), so the group cannot be used again.
      try {
        if (host)
          cuda_check(cudaMemcpyAsync(buf, pinned, bytes, cudaMemcpyHostToDevice, s_->stream), "copy to GPU");
        op(buf);
        if (host)
          cuda_check(cudaMemcpyAsync(pinned, buf, bytes, cudaMemcpyDeviceToHost, s_->stream), "copy to host");
        cuda_check(cudaEventRecord(w->end(), s_->stream), "cudaEventRecord");
      } catch (const std::exception& e) {
        if (s_->broken.empty()) s_->broken = e.what();
        s_->abort();
        throw;
      }
    }
    if (host) {
      w->wait();  // with the timeout
      std::memcpy(t.raw_data(), pinned, bytes);
    }
    return w;
  }

  std::shared_ptr<Shared> s_;
  std::shared_ptr<Store> store_;
};

}  // namespace

CommunicatorPtr make_nccl_communicator(std::shared_ptr<Store> store, int rank, int size, int local_rank,
                                       std::chrono::milliseconds timeout, int gpu) {
  RESIN_CHECK(store != nullptr, "nccl: no rendezvous store");
  RESIN_CHECK(size >= 1 && rank >= 0 && rank < size, "nccl: rank ", rank, " outside [0, ", size, ")");
  int devices = 0;
  cuda_check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount (is there a GPU?)");
  RESIN_CHECK(devices > 0, "nccl: no CUDA device on this machine; use the gloo backend");
  auto s = std::make_shared<Shared>();
  RESIN_CHECK(gpu < devices, "nccl: cuda:", gpu, " does not exist (", devices, " CUDA device",
              devices == 1 ? "" : "s", ")");
  s->device = gpu >= 0 ? gpu : local_rank % devices;
  s->rank = rank;
  s->size = size;
  s->timeout = timeout;
  cuda_check(cudaSetDevice(s->device), "cudaSetDevice");
  cuda_check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");

  ncclUniqueId id;
  std::vector<char> bytes(sizeof id);
  if (rank == 0) {
    s->check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    std::memcpy(bytes.data(), &id, sizeof id);
    store->set("nccl/unique_id", bytes);
  } else {
    bytes = store->get("nccl/unique_id", timeout);
    RESIN_CHECK(bytes.size() == sizeof id, "nccl: malformed unique id from rank 0");
    std::memcpy(&id, bytes.data(), sizeof id);
  }
  // Non-blocking initialisation, so a rank that never joins ends in a timeout, not a hang.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const ncclResult_t r = ncclCommInitRankConfig(&s->comm, size, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) s->fail_with("ncclCommInitRank", r);
  s->check(r, "ncclCommInitRank");
  return std::make_shared<NcclCommunicator>(std::move(s), std::move(store));
}

}  // namespace resin::distributed
