// Device placement on a GPU: moving tensors and modules, ops that keep their device, errors when
// devices mix, the caching allocator, optimizer steps that round exactly as on the CPU, and an
// ops-level block with gradients against the CPU.
#include <cuda_runtime.h>

#include <filesystem>

#include "gpu_util.h"
#include "resin/backend/cuda/allocator.h"
#include "resin/backend/cuda_fused.h"
#include "resin/io/safetensors.h"
#include "resin/models/zoo.h"
#include "resin/optim/clip.h"
#include "resin/optim/optim.h"

namespace resin::test {
namespace {

const Device kGpu = Device::cuda(0);

TEST(CudaDevice, ToAndFromKeepsValuesAndLayout) {
  RESIN_REQUIRE_GPU();
  const Tensor x = rnd({2, 3, 4, 5}).contiguous(MemoryFormat::channels_last);
  const Tensor g = x.to(kGpu);
  EXPECT_EQ(g.device(), kGpu);
  EXPECT_TRUE(g.is_channels_last());
  EXPECT_EQ(g.to_vector(), x.to_vector());
  const Tensor back = g.to(Device::cpu());
  EXPECT_EQ(back.device(), Device::cpu());
  EXPECT_EQ(back.strides(), x.strides());
  EXPECT_EQ(back.to_vector(), x.to_vector());
  // A non-dense view moves as a contiguous copy.
  const Tensor v = x.narrow(3, 1, 3);
  EXPECT_EQ(v.to(kGpu).to_vector(), v.to_vector());
  EXPECT_DOUBLE_EQ(full({}, 2.5, {.device = kGpu}).item(), 2.5);
}

TEST(CudaDevice, FactoriesDrawTheSameNumbersOnEveryDevice) {
  RESIN_REQUIRE_GPU();
  Generator a(7), b(7);
  EXPECT_EQ(randn({100}, {}, &a).to_vector(), randn({100}, {.device = kGpu}, &b).to_vector());
  EXPECT_EQ(arange(0, 10, 1, {.device = kGpu}).to_vector(), arange(0, 10).to_vector());
  EXPECT_EQ(zeros({3}, {.dtype = DType::i64, .device = kGpu}).device(), kGpu);
}

TEST(CudaDevice, OpsKeepTheDeviceAndGradientsFlowBack) {
  RESIN_REQUIRE_GPU();
  Tensor x = rnd({4, 3}).set_requires_grad(true);
  Tensor y = mul(add(x.to(kGpu), 1.0), x.to(kGpu));  // (x + 1) * x on the GPU
  EXPECT_EQ(y.device(), kGpu);
  sum(y).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), Device::cpu());  // ToDeviceBackward moved it home
  const auto xv = x.to_vector(), gv = x.grad().to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_NEAR(gv[i], 2 * xv[i] + 1, 1e-6);
  EXPECT_EQ(argmax(y.detach(), 1).device(), kGpu);
}

TEST(CudaDevice, MixingDevicesIsAnError) {
  RESIN_REQUIRE_GPU();
  const Tensor a = rnd({3}), b = rnd({3}).to(kGpu);
  try {
    add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device mismatch"), std::string::npos) << e.what();
  }
  const Tensor logits = rnd({4, 5}).to(kGpu), target = from_data<int64_t>({0, 1, 2, 3}, Shape{4});
  EXPECT_THROW(cross_entropy(logits, target), Error);
  EXPECT_NO_THROW(cross_entropy(logits, target.to(kGpu)));
  EXPECT_THROW(cross_entropy(logits, from_data<int64_t>({0, 1, 9, 3}, Shape{4}).to(kGpu)), Error);  // range
  EXPECT_THROW(b.data<float>(), Error);  // host access to device memory
  EXPECT_THROW(empty({2}, {.device = Device::cuda(cuda::device_count())}), Error);
}

TEST(CudaDevice, AllocatorReusesFreedBlocks) {
  RESIN_REQUIRE_GPU();
  if (!backend::cuda::CachingAllocator::caching()) GTEST_SKIP() << "RESIN_CUDA_NO_CACHING=1";
  { Tensor warm = empty({1000, 1000}, {.device = kGpu}); }
  const auto s0 = cuda::memory_stats(0);
  for (int i = 0; i < 5; ++i) Tensor t = empty({1000, 1000}, {.device = kGpu});
  const auto s1 = cuda::memory_stats(0);
  EXPECT_EQ(s1.device_allocations, s0.device_allocations);
  EXPECT_GE(s1.cache_hits, s0.cache_hits + 5);
  EXPECT_EQ(s1.allocated_bytes, s0.allocated_bytes);
  EXPECT_GE(s1.reserved_bytes, s1.allocated_bytes);
}

// Out of memory: the allocator first hands its cached blocks back to the driver and retries (a
// request that fits only once the cache is gone succeeds), and a request beyond the GPU's memory is
// a clear error naming the device and the size; the device stays usable afterwards.
TEST(CudaDevice, OutOfMemoryReleasesTheCacheThenIsAClearError) {
  RESIN_REQUIRE_GPU();
  const Device gpu = gpu_device();
  if (backend::cuda::CachingAllocator::caching()) {
    size_t free_bytes = 0, total_bytes = 0;
    ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
    const auto part = [&](double f) { return static_cast<int64_t>(static_cast<double>(free_bytes) * f); };
    { Tensor cached = empty({part(0.55)}, {.dtype = DType::u8, .device = gpu}); }  // now a cached free block
    const auto before = cuda::memory_stats(0);
    EXPECT_GE(before.reserved_bytes - before.allocated_bytes, part(0.55));
    Tensor big = empty({part(0.6)}, {.dtype = DType::u8, .device = gpu});  // fits only without the cache
    const auto after = cuda::memory_stats(0);
    EXPECT_EQ(after.device_allocations, before.device_allocations + 1);
    EXPECT_LT(after.reserved_bytes, before.reserved_bytes + part(0.6)) << "the cached block was not released";
  }
  try {
    Tensor huge = empty({int64_t{1} << 42}, {.dtype = DType::u8, .device = gpu});  // 4 TiB
    ADD_FAILURE() << "4 TiB allocated";
  } catch (const OutOfMemoryError& e) {  // its own type: callers may retry with less
    EXPECT_NE(std::string(e.what()).find(
                  "CUDA out of memory on cuda:0: tried to allocate 4398046511104 bytes with "),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(sum(ones({1000}, {.device = gpu})).item(), 1000.0);
}

// The fused optimizer kernels repeat the CPU loops' operations and fused multiply-adds, so a step
// on the GPU gives bit-identical parameters and state.
TEST(CudaDevice, OptimizerStepsMatchTheCpuBitForBit) {
  RESIN_REQUIRE_GPU();
  for (int which = 0; which < 3; ++which) {
    const Tensor p0 = rnd({257, 33}), g0 = rnd({257, 33}), g1 = rnd({257, 33});
    auto run = [&](Device d) {
      Tensor p = p0.clone().to(d).detach().set_requires_grad(true);  // a copy: the step writes in place
      std::unique_ptr<optim::Optimizer> opt;
      if (which == 0) opt = std::make_unique<optim::Sgd>(std::vector<Tensor>{p}, 0.1, 5e-4, optim::SgdOptions{0.9, 0, true});
      else if (which == 1) opt = std::make_unique<optim::Sgd>(std::vector<Tensor>{p}, 0.05, 0.0, optim::SgdOptions{0.9, 0.1, false});
      else opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{p}, 1e-3, 1e-2, optim::AdamWOptions{0.9, 0.999, 1e-8, true});
      for (const Tensor& g : {g0, g1, g0}) {
        p.set_grad(g.to(d));
        opt->step();
      }
      return p.detach().to(Device::cpu()).to_vector();
    };
    EXPECT_EQ(run(kGpu), run(Device::cpu())) << "optimizer " << which;
  }
}

TEST(CudaDevice, FiniteCheckFindsNaN) {
  RESIN_REQUIRE_GPU();
  Tensor a = rnd({1000}).to(kGpu), b = rnd({7, 7}).to(kGpu);
  EXPECT_TRUE(backend::cuda_fused::all_finite({a, b}));
  Tensor bad = rnd({7, 7});
  bad.data<float>()[20] = INFINITY;
  EXPECT_FALSE(backend::cuda_fused::all_finite({a, bad.to(kGpu)}));
  Tensor p = rnd({7, 7}).to(kGpu).set_requires_grad(true);
  p.set_grad(bad.to(kGpu));
  EXPECT_EQ(optim::nonfinite_grads({{"w", p}}), std::vector<std::string>{"w"});
}

// Gradient norms of GPU gradients are taken on the GPU (f64 reductions, one copy of the per-gradient
// sums): the total of every order and the clipped gradients against the CPU's host loops, with an
// f32 and an f64 gradient, a strided one and one without gradient; a non-finite norm is still
// refused with the culprit named.
TEST(CudaDevice, GradientNormsAndClippingMatchTheCpu) {
  RESIN_REQUIRE_GPU();
  const Tensor g0 = rnd({33, 65}), g1 = rnd({4, 3, 5, 5}).contiguous(MemoryFormat::channels_last),
               g2 = rnd({17}).to(DType::f64), g3 = rnd({9, 8}).transpose(0, 1);
  auto params = [&](Device d) {
    std::vector<std::pair<std::string, Tensor>> named;
    int i = 0;
    for (const Tensor& g : {g0, g1, g2, g3, Tensor()}) {
      const Shape s = g.defined() ? g.shape() : Shape{3};
      Tensor p =
          zeros(s, {.dtype = g.defined() ? g.dtype() : DType::f32, .device = d}).set_requires_grad(true);
      if (g.defined()) p.set_grad(g.to(d));
      named.emplace_back("p" + std::to_string(i++), p);
    }
    return named;
  };
  for (const double order : {2.0, 1.0, 3.0, optim::kInfNorm}) {
    SCOPED_TRACE(str_cat("norm order ", order));
    auto on_cpu = params(Device::cpu()), on_gpu = params(kGpu);
    const double want = optim::clip_grad_norm(on_cpu, 0.5, order),
                 got = optim::clip_grad_norm(on_gpu, 0.5, order);
    EXPECT_NEAR(got, want, 1e-12 * want);
    for (size_t i = 0; i + 1 < on_cpu.size(); ++i) {
      EXPECT_EQ(on_gpu[i].second.grad().device(), kGpu);
      expect_near_ref(on_gpu[i].second.grad().to(Device::cpu()), on_cpu[i].second.grad(), on_cpu[i].first);
    }
  }
  auto bad = params(kGpu);
  Tensor nan_grad = rnd({17}).to(DType::f64);
  nan_grad.data<double>()[3] = NAN;
  bad[2].second.set_grad(nan_grad.to(kGpu));
  try {
    optim::clip_grad_norm(bad, 1.0, 2.0, /*error_if_nonfinite=*/true);
    ADD_FAILURE() << "a NaN gradient was clipped";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parameters with non-finite gradients: p2"), std::string::npos)
        << e.what();
  }
}

// conv(+bias) -> relu -> batch norm -> max pool -> linear -> cross entropy, forward and backward on
// the GPU against the CPU, in f32 (1e-3 relative after the whole chain) and both layouts.
TEST(CudaDevice, OpsLevelBlockMatchesTheCpu) {
  RESIN_REQUIRE_GPU();
  for (bool cl : {false, true}) {
    const Tensor x0 = rnd({4, 3, 12, 12}), w0 = rnd({8, 3, 3, 3}), b0 = rnd(Shape{8}), g0 = rnd(Shape{8});
    const Tensor fc0 = rnd({5, 8 * 6 * 6}), target = from_data<int64_t>({0, 4, 2, 1}, Shape{4});
    auto run = [&](Device d) {
      Tensor x = (cl ? x0.contiguous(MemoryFormat::channels_last) : x0).to(d).detach().set_requires_grad(true);
      Tensor w = w0.to(d).detach().set_requires_grad(true), b = b0.to(d).detach().set_requires_grad(true);
      Tensor g = g0.to(d).detach().set_requires_grad(true), fc = fc0.to(d).detach().set_requires_grad(true);
      Tensor rm = zeros({8}, {.device = d}), rv = ones({8}, {.device = d});
      Tensor y = relu(conv2d(x, w, b, {.stride = {1, 1}, .padding = {1, 1}}));
      y = batch_norm(y, rm, rv, g, Tensor(), true, 0.1, 1e-5);
      y = max_pool2d(y, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
      Tensor loss = cross_entropy(linear(y.flatten(1), fc), target.to(d));
      loss.backward();
      return std::vector<Tensor>{loss.detach(), x.grad(), w.grad(), b.grad(), g.grad(), fc.grad(), rm, rv};
    };
    const auto got = run(kGpu), want = run(Device::cpu());
    const char* names[] = {"loss", "x.grad", "w.grad", "b.grad", "gamma.grad", "fc.grad", "running_mean", "running_var"};
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].device(), kGpu) << names[i];
      expect_close(got[i], want[i], std::string(cl ? "channels_last " : "nchw ") + names[i], 1e-3, 1e-4);
    }
  }
}

TEST(CudaDevice, ModuleToMovesParametersAndSavesFromTheGpu) {
  RESIN_REQUIRE_GPU();
  auto model = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  model->to(kGpu);
  for (auto& [n, p] : model->named_parameters()) {
    EXPECT_EQ(p.device(), kGpu) << n;
    EXPECT_TRUE(p.requires_grad()) << n;
  }
  for (auto& [n, b] : model->named_buffers())
    EXPECT_EQ(b.device(), is_floating(b.dtype()) ? kGpu : Device::cpu()) << n;
  const Tensor logits = model->forward(rnd({2, 1, 28, 28}).to(kGpu));
  EXPECT_EQ(logits.device(), kGpu);
  const std::string path = str_cat(RESIN_BINARY_DIR, "/gpu_weights.safetensors");
  io::save_safetensors(path, model->state_dict());
  auto cpu_model = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  cpu_model->load_state_dict(io::load_safetensors(path).tensors);
  for (auto& [n, t] : cpu_model->state_dict()) EXPECT_EQ(t.to_vector(), model->state_dict().at(n).to_vector()) << n;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace resin::test

namespace resin::test {
namespace {

// A second GPU (skipped with one; CI runs it on two emulated GPUs): each device has its own context,
// stream and allocator, work on cuda:1 runs there while cuda:0 is this thread's last device, copies
// between the two go peer to peer, and mixing them is an error.
TEST(CudaTwoDevices, EachDeviceComputesOnItsOwnAndCopiesBetweenThem) {
  RESIN_REQUIRE_GPU();
  if (cuda::device_count() < 2) GTEST_SKIP() << "one GPU";
  const Device d0 = Device::cuda(0), d1 = Device::cuda(1);
  const Tensor x = rnd({3, 4, 5, 6});
  const Tensor a = x.to(d0);
  const Tensor b = x.to(d1);
  EXPECT_EQ(b.device(), d1);
  // An op on cuda:1 right after one on cuda:0, and back.
  const Tensor ya = relu(mul(a, 2.0)), yb = relu(mul(b, 2.0));
  EXPECT_EQ(yb.device(), d1);
  EXPECT_EQ(ya.to_vector(), yb.to_vector());
  EXPECT_EQ(sum(yb, {1}).to_vector(), sum(ya, {1}).to_vector());
  // cuda:1 -> cuda:0 and back, through the peer copy.
  EXPECT_EQ(yb.to(d0).device(), d0);
  EXPECT_EQ(yb.to(d0).to_vector(), ya.to_vector());
  EXPECT_EQ(ya.to(d1).to(d0).to(Device::cpu()).to_vector(), ya.to_vector());
  EXPECT_THROW(add(a, b), Error);
  // A network on the second device trains like on the first.
  manual_seed(4);
  auto m0 =
      models::create_model("rescnn:n=1,width=4", {.in_channels = 3, .num_classes = 10, .image_size = 8});
  auto m1 =
      models::create_model("rescnn:n=1,width=4", {.in_channels = 3, .num_classes = 10, .image_size = 8});
  m1->load_state_dict(m0->state_dict());
  m0->to(d0);
  m1->to(d1);
  const Tensor in = rnd({2, 3, 8, 8}), labels = from_data<int64_t>({1, 7}, Shape{2});
  cross_entropy(m0->forward(in.to(d0)), labels.to(d0)).backward();
  cross_entropy(m1->forward(in.to(d1)), labels.to(d1)).backward();
  const auto p0 = m0->named_parameters(), p1 = m1->named_parameters();
  for (size_t i = 0; i < p0.size(); ++i) {
    EXPECT_EQ(p1[i].second.grad().device(), d1) << p1[i].first;
    // Within f32 tolerance, not bit for bit: cuDNN may pick atomics-based (non-deterministic)
    // backward algorithms, which sum in a different order on every run.
    expect_near_ref(p1[i].second.grad().to(Device::cpu()), p0[i].second.grad().to(Device::cpu()),
                    p1[i].first);
  }
  EXPECT_GT(cuda::memory_stats(1).allocated_bytes, 0);
}

}  // namespace
}  // namespace resin::test
