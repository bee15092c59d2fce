// Device names, and the errors for a device this build or machine cannot use. Runs in every build:
// without RESIN_WITH_CUDA, and with it on a machine without a GPU (tests/gpu covers the GPU itself).
#include <gtest/gtest.h>

#include <functional>

#include "resin/core/cuda.h"
#include "resin/models/zoo.h"
#include "resin/resin.h"

namespace resin {
namespace {

TEST(Device, ParsesNames) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(1).str(), "cuda:1");
  EXPECT_EQ(parse_device("cpu:0"), Device::cpu());
  EXPECT_EQ(parse_device("cpu:1"), Device::placement_check());
  EXPECT_EQ(Device::placement_check().str(), "cpu:1");
  EXPECT_EQ(Device::cpu().str(), "cpu");
  for (const char* bad : {"gpu", "CUDA", "cpu:2", "cpu:", "CPU", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1",
                          "cuda:x", "cuda:1x", "cuda:123456789", ""}) {
    try {
      parse_device(bad);
      ADD_FAILURE() << "'" << bad << "' parsed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected cpu, cuda or cuda:N"), std::string::npos) << e.what();
    }
  }
}

// Everything that would put a tensor on a GPU says why it cannot.
TEST(Device, UnusableCudaDeviceIsAClearError) {
  if (cuda::is_available()) GTEST_SKIP() << "this machine has a GPU (tests/gpu covers it)";
  const std::string why = cuda::built() ? "no CUDA device" : "resin was built without CUDA";
  EXPECT_EQ(cuda::device_count(), 0);
  EXPECT_EQ(cuda::compute_capability(Device::cuda(0)), 0);
  EXPECT_EQ(cuda::compute_capability(Device::cpu()), 0);
  EXPECT_NO_THROW(cuda::check_device(Device::cpu()));
  const Tensor x = ones({2, 3});
  auto model = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  const std::vector<std::pair<const char*, std::function<void()>>> attempts = {
      {"check_device", [] { cuda::check_device(Device::cuda(0)); }},
      {"empty", [] { empty({2}, {.device = Device::cuda(0)}); }},
      {"zeros", [] { zeros({2}, {.device = Device::cuda(0)}); }},
      {"randn", [] { randn({2}, {.device = Device::cuda(0)}); }},
      {"Tensor::to", [&] { x.to(Device::cuda(0)); }},
      {"Module::to", [&] { model->to(Device::cuda(0)); }},
  };
  for (const auto& [what, f] : attempts) {
    try {
      f();
      ADD_FAILURE() << what << " did not throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << what << ": " << e.what();
    }
  }
  EXPECT_EQ(x.device(), Device::cpu());
  for (auto& [n, p] : model->named_parameters()) EXPECT_EQ(p.device(), Device::cpu()) << n;
}

// cpu:1 is host memory but a device of its own: ops refuse to mix it with cpu, as with a GPU, and
// to() moves tensors and gradients between the two.
TEST(Device, ThePlacementCheckDeviceIsSeparateFromTheCpu) {
  const Device dev = Device::placement_check();
  Tensor a = randn({2, 3}).set_requires_grad(true);
  const Tensor b = a.to(dev);
  EXPECT_EQ(b.device(), dev);
  EXPECT_EQ(b.to_vector(), a.to_vector());
  for (const auto& [what, f] : std::vector<std::pair<const char*, std::function<void()>>>{
           {"add", [&] { add(a, b); }},
           {"matmul", [&] { matmul(a, b.transpose(0, 1)); }},
           {"cross_entropy", [&] { cross_entropy(b, zeros({2}, {.dtype = DType::i64})); }}}) {
    try {
      f();
      ADD_FAILURE() << what << " mixed cpu and cpu:1";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cpu:1"), std::string::npos) << what << ": " << e.what();
    }
  }
  sum(mul(b, b)).backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_EQ(a.grad().device(), Device::cpu());
  const auto av = a.to_vector(), gv = a.grad().to_vector();
  for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(gv[i], 2 * av[i]);
  EXPECT_EQ(zeros({2}, {.device = dev}).device(), dev);
}

TEST(Device, MovingToTheSameDeviceIsANoOp) {
  const Tensor x = ones({2, 3});
  EXPECT_TRUE(x.to(Device::cpu()).is_same(x));
}

}  // namespace
}  // namespace resin
