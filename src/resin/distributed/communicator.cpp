#include "resin/distributed/communicator.h"

namespace resin::distributed {

namespace {

class CompletedWork final : public Work {
 public:
  explicit CompletedWork(double seconds) : seconds_(seconds) {}
  void wait() override {}
  bool completed() const override { return true; }
  double run_seconds() const override { return seconds_; }

 private:
  double seconds_;
};

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  std::chrono::milliseconds timeout() const override { return std::chrono::milliseconds(0); }
  WorkPtr all_reduce_async(const Tensor& t) override {
    check_collective_tensor(t, "all_reduce", true);
    return completed_work();
  }
  WorkPtr broadcast_async(const Tensor& t, int root) override {
    check_collective_tensor(t, "broadcast", false);
    RESIN_CHECK(root == 0, "broadcast: root ", root, " outside [0, 1)");
    return completed_work();
  }
  void barrier() override {}
};

}  // namespace

CommunicatorPtr make_single_process_communicator() { return std::make_shared<SingleProcessCommunicator>(); }

WorkPtr completed_work(double run_seconds) { return std::make_shared<CompletedWork>(run_seconds); }

void check_collective_tensor(const Tensor& t, const char* op, bool reduction) {
  RESIN_CHECK(t.defined(), op, ": tensor is undefined");
  RESIN_CHECK(t.is_contiguous(), op, ": expected a contiguous tensor, got shape ", t.shape(), " with strides ", t.strides());
  if (reduction)
    RESIN_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 || t.dtype() == DType::i64, op,
                ": expected an f32, f64 or i64 tensor, got ", t.dtype());
}

}  // namespace resin::distributed
