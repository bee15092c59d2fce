// Data parallelism with the model on the GPU: DDP's gradient buckets and SyncBN's statistics on the
// host (where Gloo reduces) and on the GPU (where NCCL reduces), against the same computation on the
// CPU. The communicator stands in for two ranks with identical data: its all-reduce doubles a tensor,
// so the average DDP writes back is the rank's own gradient. (Two real ranks: tests/distributed, on
// cpu:1.)
#include <vector>

#include "gpu_util.h"
#include "resin/distributed/communicator.h"
#include "resin/distributed/ddp.h"
#include "resin/distributed/sync_batch_norm.h"
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
    if (t.dtype() == DType::f64)
      doubled<double>(t);
    else if (t.dtype() == DType::f32)
      doubled<float>(t);
    else
      ADD_FAILURE() << "all-reduce of " << t.dtype();
    ++reduces;
    return distributed::completed_work();
  }
  WorkPtr broadcast_async(const Tensor&, int) override { return distributed::completed_work(); }
  void barrier() override {}
  int reduces = 0;

 private:
  // Raw copies, not ops: the communicator touches memory as a collective library does.
  template <class T>
  static void doubled(const Tensor& t) {
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(T);
    std::vector<T> host(static_cast<size_t>(t.numel()));
    cuda::raw::copy(host.data(), Device::cpu(), t.raw_data(), t.device(), bytes);
    for (T& v : host) v *= 2;
    cuda::raw::copy(t.raw_data(), t.device(), host.data(), Device::cpu(), bytes);
  }
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

// SyncBN with a GPU activation (NCHW and channels-last, f32 and f64), its statistics reduced on the
// host or on the GPU: output, every gradient and the running statistics against the CPU's SyncBN
// over the same stand-in pair (doubled sums and counts: the unbiased variance sees 2N values).
TEST(CudaSyncBatchNorm, MatchesTheCpuWithStatisticsReducedOnTheHostOrTheGpu) {
  RESIN_REQUIRE_GPU();
  const Device gpu = gpu_device();
  for (DType dt : {DType::f32, DType::f64})
    for (MemoryFormat f : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      Generator g(5);
      const TensorOptions o{.dtype = dt};
      const Tensor x = add(mul(randn({4, 3, 5, 6}, o, &g), 2.0), 1.0).contiguous(f),
                   dy = randn({4, 3, 5, 6}, o, &g);
      const Tensor w = randn({3}, o, &g), b = randn({3}, o, &g);
      struct Run {
        Tensor y, gx, gw, gb, rm, rv;
      };
      auto run = [&](Device d, Device reduce_on) {
        Tensor xd = x.clone(f).to(d), wd = w.clone().to(d), bd = b.clone().to(d);  // fresh leaves
        for (Tensor* t : {&xd, &wd, &bd}) t->set_requires_grad(true);
        Tensor rm = zeros({3}, {.dtype = dt, .device = d}), rv = ones({3}, {.dtype = dt, .device = d});
        Tensor y = distributed::sync_batch_norm(xd, rm, rv, wd, bd, 0.1, 1e-5,
                                                std::make_shared<DoublingPair>(reduce_on));
        sum(mul(y, dy.to(d))).backward();
        EXPECT_EQ(y.device(), d);
        if (f == MemoryFormat::channels_last) {
          EXPECT_TRUE(xd.grad().is_channels_last());
        }
        auto host = [](const Tensor& t) { return t.to(Device::cpu()); };
        return Run{host(y), host(xd.grad()), host(wd.grad()), host(bd.grad()), host(rm), host(rv)};
      };
      const Run want = run(Device::cpu(), Device::cpu());
      for (const Device reduce_on : {Device::cpu(), gpu}) {
        SCOPED_TRACE(str_cat(dtype_label(dt), f == MemoryFormat::channels_last ? " channels-last" : " NCHW",
                             ", statistics reduced on ", reduce_on));
        const Run got = run(gpu, reduce_on);
        expect_near_ref(got.y, want.y, "output");
        expect_near_ref(got.gx, want.gx, "input gradient");
        expect_near_ref(got.gw, want.gw, "weight gradient");
        expect_near_ref(got.gb, want.gb, "bias gradient");
        expect_near_ref(got.rm, want.rm, "running mean");
        expect_near_ref(got.rv, want.rv, "running variance");
      }
    }
}

}  // namespace
}  // namespace resin::test
