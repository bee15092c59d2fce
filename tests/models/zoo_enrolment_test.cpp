// Every registered model is enrolled here automatically (one test per zoo() entry): a training-mode
// forward at a reduced input size gives [N, classes] finite logits, and a backward pass gives every
// parameter a defined, finite gradient. ImageNet-style models run at 32x32 (their smallest valid
// size for VGG and DenseNet), CIFAR-style models at 16x16, one channel, 7 classes, batch 2.
//
// Each runs on the placement-check device cpu:1 (core/device.h): the same CPU kernels, but any
// tensor a model creates on the plain CPU instead of its input's device (a mask, a constant, a
// buffer Module::to missed) is a device-mismatch error here, as it would be on a GPU.
//
// resnet1202 / resnet1202_b / preact_resnet1001 are the slow ones (1,000+ layers); they run only
// with RESIN_ZOO_FULL=1 (their structure and parameter counts are checked in zoo_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "resin/models/zoo.h"
#include "resin/resin.h"

using namespace resin;

namespace {

std::vector<std::string> zoo_names() {
  std::vector<std::string> names;
  for (const auto& e : models::zoo()) names.push_back(e.name);
  return names;
}

class ZooEnrolment : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooEnrolment, ForwardBackwardFinite) {
  const models::ZooEntry& e = models::zoo_entry(GetParam());
  // The lab's models are small and some need their own input size (ViT patches of 7 on 28x28).
  const bool lab = e.family.rfind("lab-", 0) == 0;
  const int64_t size = lab ? e.paper_args.image_size
                           : std::max(e.min_image_size, e.paper_args.image_size >= 224 ? int64_t{32} : int64_t{16});
  constexpr int64_t kClasses = 7;
  manual_seed(17);
  const Device dev = Device::placement_check();
  auto m = e.make({.in_channels = 1, .num_classes = kClasses, .image_size = size});
  m->to(dev);
  m->train();
  Tensor x = randn({2, 1, size, size}, {.device = dev});
  Tensor y = m->forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, kClasses}));
  ASSERT_EQ(y.device(), dev);
  for (double v : y.to_vector()) ASSERT_TRUE(std::isfinite(v)) << "non-finite logit";
  Tensor loss = cross_entropy(y, from_data(std::vector<int64_t>{1, 5}, Shape{2}).to(dev));
  loss.backward();
  ASSERT_TRUE(std::isfinite(loss.item()));
  size_t nonzero = 0, n_params = 0;
  for (auto& [name, p] : m->named_parameters()) {
    ++n_params;
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    ASSERT_EQ(p.device(), dev) << name;
    ASSERT_EQ(p.grad().device(), dev) << name;
    bool any = false;
    for (double v : p.grad().to_vector()) {
      ASSERT_TRUE(std::isfinite(v)) << name << " has a non-finite gradient";
      any |= v != 0.0;
    }
    nonzero += any;
  }
  EXPECT_GT(n_params, 0u);
  // ReZero (alpha = 0) and Fixup (zero-initialised last layers) silence every branch at
  // initialisation by design: only the parameters before the first zero get gradients.
  const bool zero_branches = GetParam().find("rezero") != std::string::npos ||
                             GetParam().find("fixup") != std::string::npos;
  if (zero_branches) {
    EXPECT_GT(nonzero, 0u);
    return;
  }
  // A disconnected branch would leave whole tensors at zero; allow a few (ReLU-dead) exceptions.
  EXPECT_GE(nonzero * 10, n_params * 9) << nonzero << " of " << n_params << " parameters got a non-zero gradient";
}

INSTANTIATE_TEST_SUITE_P(AllModels, ZooEnrolment, ::testing::ValuesIn(zoo_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
