#include "resin/distributed/gloo_communicator.h"

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace resin::distributed {

namespace {

using Clock = std::chrono::steady_clock;

// Gloo's rendezvous reads and writes through this view of resin's store.
class GlooStore final : public gloo::rendezvous::Store {
 public:
  GlooStore(distributed::Store& s, std::chrono::milliseconds timeout) : s_(s), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { s_.set("gloo/" + key, data); }
  std::vector<char> get(const std::string& key) override { return s_.get("gloo/" + key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    for (const auto& k : keys) s_.get("gloo/" + k, timeout);
  }

 private:
  distributed::Store& s_;
  std::chrono::milliseconds timeout_;
};

class GlooWork final : public Work {
 public:
  GlooWork(const char* op, Tensor keep, std::function<void(uint32_t)> fn)
      : op_(op), keep_(std::move(keep)), fn_(std::move(fn)) {}

  void wait() override {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return done_; });
    if (!error_.empty()) throw Error(error_);
  }
  bool completed() const override {
    std::lock_guard<std::mutex> lk(mu_);
    return done_;
  }
  double run_seconds() const override {
    std::lock_guard<std::mutex> lk(mu_);
    return seconds_;
  }

  const char* op() const { return op_; }
  void run(uint32_t tag) { fn_(tag); }
  void finish(std::string error, double seconds) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      error_ = std::move(error);
      seconds_ = seconds;
      fn_ = nullptr;
      keep_ = Tensor();
    }
    cv_.notify_all();
  }

 private:
  const char* op_;
  Tensor keep_;  // the operation's tensor stays alive until it completed
  std::function<void(uint32_t)> fn_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string error_;
  double seconds_ = 0;
};

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

ReduceFn sum_fn(DType t) {
  switch (t) {
    case DType::f32: return &gloo::sum<float>;
    case DType::f64: return &gloo::sum<double>;
    case DType::i64: return &gloo::sum<int64_t>;
    default: RESIN_FAIL("all_reduce: no sum for dtype ", t);
  }
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<Store> store, std::shared_ptr<gloo::Context> ctx, std::chrono::milliseconds timeout)
      : store_(std::move(store)), ctx_(std::move(ctx)), timeout_(timeout) {
    worker_ = std::thread([this] { worker_loop(); });
  }

  ~GlooCommunicator() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();  // an operation in flight ends within the timeout
  }

  int rank() const override { return ctx_->rank; }
  int size() const override { return ctx_->size; }
  std::string backend() const override { return "gloo"; }
  // Gloo reads and writes host memory only (a GPU tensor's address would be garbage to it).
  static void check_host(const Tensor& t, const char* op) {
    RESIN_CHECK(t.device().type == DeviceType::cpu, "gloo ", op, ": the tensor is on ", t.device(),
                "; gloo reduces host memory (DistributedDataParallel keeps gloo buckets on the CPU)");
  }
  std::chrono::milliseconds timeout() const override { return timeout_; }

  WorkPtr all_reduce_async(const Tensor& t) override {
    check_collective_tensor(t, "all_reduce", true);
    check_host(t, "all_reduce");
    void* ptr = t.raw_data();
    const auto n = static_cast<size_t>(t.numel());
    const DType dtype = t.dtype();
    return enqueue("all_reduce", t, [this, ptr, n, dtype](uint32_t tag) {
      gloo::AllreduceOptions o(ctx_);
      if (dtype == DType::f32) o.setOutput(static_cast<float*>(ptr), n);
      else if (dtype == DType::f64) o.setOutput(static_cast<double*>(ptr), n);
      else o.setOutput(static_cast<int64_t*>(ptr), n);
      o.setReduceFunction(sum_fn(dtype));
      o.setTag(tag);
      o.setTimeout(timeout_);
      gloo::allreduce(o);
    }, n == 0);
  }

  WorkPtr broadcast_async(const Tensor& t, int root) override {
    check_collective_tensor(t, "broadcast", false);
    check_host(t, "broadcast");
    RESIN_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " outside [0, ", size(), ")");
    auto* ptr = static_cast<char*>(t.raw_data());
    const auto bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    return enqueue("broadcast", t, [this, ptr, bytes, root](uint32_t tag) {
      gloo::BroadcastOptions o(ctx_);
      o.setOutput(ptr, bytes);  // bytes: any dtype travels as char
      o.setRoot(root);
      o.setTag(tag);
      o.setTimeout(timeout_);
      gloo::broadcast(o);
    }, bytes == 0);
  }

  void barrier() override {
    enqueue("barrier", Tensor(), [this](uint32_t tag) {
      gloo::BarrierOptions o(ctx_);
      o.setTag(tag);
      o.setTimeout(timeout_);
      gloo::barrier(o);
    }, false)->wait();
  }

 private:
  WorkPtr enqueue(const char* op, Tensor keep, std::function<void(uint32_t)> fn, bool empty) {
    if (empty) return completed_work();
    auto w = std::make_shared<GlooWork>(op, std::move(keep), std::move(fn));
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(w);
    }
    cv_.notify_all();
    return w;
  }

  void worker_loop() {
    while (true) {
      std::shared_ptr<GlooWork> w;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        w = std::move(queue_.front());
        queue_.pop_front();
        if (stop_) {
          lk.unlock();
          w->finish(str_cat("distributed: ", w->op(), " cancelled: the communicator was shut down"), 0);
          continue;
        }
      }
      if (!broken_.empty()) {
        w->finish(str_cat("distributed: ", w->op(), " not run on rank ", rank(), ": the group failed earlier (",
                          broken_, ")"),
                  0);
        continue;
      }
      const auto t0 = Clock::now();
      std::string error;
      try {
        w->run(next_tag_++);
      } catch (const std::exception& e) {
        error = e.what();
      }
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!error.empty()) {
        broken_ = error;
        error = str_cat("distributed: ", w->op(), " failed on rank ", rank(), " of ", size(), " after ", secs,
                        " s: ", error, ". Another rank probably exited or stopped responding (collectives time out "
                        "after ", timeout_.count() / 1000.0, " s; see --dist-timeout).");
      }
      w->finish(std::move(error), secs);
    }
  }

  std::shared_ptr<Store> store_;
  std::shared_ptr<gloo::Context> ctx_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GlooWork>> queue_;
  bool stop_ = false;
  std::string broken_;     // worker thread only
  uint32_t next_tag_ = 0;  // worker thread only: the same sequence on every rank
  std::thread worker_;     // last: started after everything it reads exists
};

// Gloo's TCP pairs write with writev(), which raises SIGPIPE when a peer has died: the default action
// would kill this rank silently (exit 141) instead of letting the collective fail with a clear error.
// Only a default disposition is replaced, so a handler the application installed stays in place.
void ignore_sigpipe_unless_handled() {
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, nullptr);
  }
}

}  // namespace

CommunicatorPtr make_gloo_communicator(std::shared_ptr<Store> store, const GlooOptions& o) {
  RESIN_CHECK(store != nullptr, "distributed: no rendezvous store");
  RESIN_CHECK(o.size >= 1 && o.rank >= 0 && o.rank < o.size, "distributed: rank ", o.rank, " outside [0, ", o.size,
              ")");
  RESIN_CHECK(o.timeout.count() > 0, "distributed: the timeout must be positive");
  ignore_sigpipe_unless_handled();
  gloo::transport::tcp::attr attr;
  if (!o.iface.empty()) {
    attr.iface = o.iface;
  } else if (!o.hostname.empty()) {
    attr.hostname = o.hostname;
  } else if (o.loopback) {
    attr.hostname = "127.0.0.1";
  } else {
    char host[256] = {};
    RESIN_CHECK(::gethostname(host, sizeof host - 1) == 0, "distributed: gethostname failed");
    attr.hostname = host;
  }
  std::shared_ptr<gloo::transport::Device> dev;
  try {
    dev = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    RESIN_FAIL("distributed: cannot open a TCP endpoint on ", attr.iface.empty() ? attr.hostname : attr.iface, ": ",
               e.what(), " (set GLOO_SOCKET_IFNAME to the network interface the ranks share)");
  }
  auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.size);
  ctx->setTimeout(o.timeout);
  GlooStore gs(*store, o.timeout);
  try {
    ctx->connectFullMesh(gs, dev);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    RESIN_FAIL("distributed: rank ", o.rank, " of ", o.size, " could not connect to its peers: ", e.what());
  }
  return std::make_shared<GlooCommunicator>(std::move(store), std::move(ctx), o.timeout);
}

}  // namespace resin::distributed
