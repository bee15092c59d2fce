// Data parallelism with the model on the GPU: DDP's gradient buckets on the host (where Gloo reduces)
// and on the GPU (where NCCL reduces), against the same backward on the CPU. The communicator stands
// in for two ranks with identical gradients: its all-reduce doubles a bucket, so the average DDP
// writes back is the rank's own gradient. (Two real ranks: tests/distributed, on cpu:1.)
#include <vector>

#include "gpu_util.h"
#include "resin/distributed/communicator.h"
#include "resin/distributed/ddp.h"
#include "resin/models/zoo.h"

namespace resin::test {
namespace {

using distributed::Communicator;
using distributed::WorkPtr;

class DoublingPair final : public Communicator {
 public:
  explicit DoublingPair(Device where) : where_(where) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend() const override { return "doubling"; }
  Device device() const override { return where_; }
  std::chrono::milliseconds timeout() const override { return std::chrono::milliseconds(1000); }
  WorkPtr all_reduce_async(const Tensor& t) override {
    EXPECT_EQ(t.device(), where_);
    EXPECT_EQ(t.dtype(), DType::f32);
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    std::vector<float> host(static_cast<size_t>(t.numel()));
    cuda::raw::copy(host.data(), Device::cpu(), t.raw_data(), t.device(), bytes);
    for (float& v : host) v *= 2;
    cuda::raw::copy(t.raw_data(), t.device(), host.data(), Device::cpu(), bytes);
    ++reduces;
    return distributed::completed_work();
  }
  WorkPtr broadcast_async(const Tensor&, int) override { return distributed::completed_work(); }
  void barrier() override {}
  int reduces = 0;

 private:
  Device where_;
};

nn::ModulePtr small_resnet() {
  manual_seed(1);
  return models::create_model("rescnn:n=1,width=4", {.in_channels = 3, .num_classes = 10, .image_size = 8});
}

TEST(CudaDdp, AveragesGpuGradientsWithBucketsOnTheHostOrTheGpu) {
  RESIN_REQUIRE_GPU();
  const Device gpu = gpu_device();
  Generator g(2);
  const Tensor x = randn({4, 3, 8, 8}, {}, &g), y = randint(0, 10, {4}, {.dtype = DType::i64}, &g);
  auto on_cpu = small_resnet();
  cross_entropy(on_cpu->forward(x), y).backward();
  for (const Device buckets : {Device::cpu(), gpu}) {
    SCOPED_TRACE(str_cat("buckets on ", buckets));
    auto model = small_resnet();
    model->to(gpu);
    auto comm = std::make_shared<DoublingPair>(buckets);
    distributed::DistributedDataParallel ddp(*model, comm, {.bucket_bytes = 1024, .first_bucket_bytes = 256});
    cross_entropy(model->forward(x.to(gpu)), y.to(gpu)).backward();
    ddp.synchronize_gradients();
    EXPECT_GT(comm->reduces, 1) << "several buckets";
    auto a = model->named_parameters(), b = on_cpu->named_parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].second.grad().device(), gpu) << a[i].first;
      expect_near_ref(a[i].second.grad().to(Device::cpu()), b[i].second.grad(), a[i].first);
    }
  }
}

}  // namespace
}  // namespace resin::test
