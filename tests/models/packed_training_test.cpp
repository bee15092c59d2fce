// A CIFAR ResNet training step with packed activations (tensor/packing.h) against the same step with
// packing off: the same loss and gradients; the step packs the Winograd stages' activations and
// unpacks only where a layout-unaware op reads one (zero-padded shortcuts, the final pooling).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../support/winograd.h"
#include "resin/models/zoo.h"
#include "resin/resin.h"
#include "resin/tensor/packing.h"

namespace resin::models {
namespace {

struct Step {
  double loss = 0;
  std::vector<std::vector<double>> grads;
  int64_t packs = 0, unpacks = 0;
};

// Sets packing on or off for a scope, restoring what it was.
struct PackingGuard {
  bool before = packing_enabled();
  explicit PackingGuard(bool on) { set_packing_enabled(on); }
  ~PackingGuard() { set_packing_enabled(before); }
};

Step train_step(nn::Module& net, const Tensor& x, const Tensor& labels, bool packing) {
  PackingGuard guard(packing);
  for (auto& [name, p] : net.named_parameters()) p.zero_grad();
  Step s;
  const int64_t packs = pack_count(), unpacks = unpack_count();
  Tensor loss = cross_entropy(net.forward(x), labels);
  loss.backward();
  s.packs = pack_count() - packs;
  s.unpacks = unpack_count() - unpacks;
  s.loss = loss.item();
  for (auto& [name, p] : net.named_parameters()) s.grads.push_back(p.grad().to_vector());
  return s;
}

TEST(PackedTraining, AResNetStepMatchesTheStridedStep) {
  if (!__builtin_cpu_supports("avx512f"))
    GTEST_SKIP() << "no AVX-512: oneDNN has no Winograd convolution here";
  auto net = create_model("resnet20", {.in_channels = 3, .num_classes = 10});
  net->train();
  Generator g(5);
  const Tensor x0 = randn({4, 3, 16, 16}, {}, &g), labels = randint(0, 10, {4}, {.dtype = DType::i64}, &g);
  for (bool cl : {true, false}) {
    const Tensor x = cl ? x0.contiguous(MemoryFormat::channels_last) : x0;
    const Step strided = train_step(*net, x, labels, false), packed = train_step(*net, x, labels, true);
    EXPECT_EQ(strided.packs, 0);
    // 12 Winograd convolutions (the 32- and 64-channel stages but their first), forward and backward.
    EXPECT_GE(packed.packs, 24) << "channels_last " << cl;
    // Unaware readers: the two zero-padded shortcuts (forward and backward) and the final pooling.
    EXPECT_LE(packed.unpacks, 5) << "channels_last " << cl;
    EXPECT_NEAR(packed.loss, strided.loss, 1e-5 * std::abs(strided.loss));
    ASSERT_EQ(packed.grads.size(), strided.grads.size());
    for (size_t i = 0; i < packed.grads.size(); ++i) {
      const std::vector<double>&a = packed.grads[i], &b = strided.grads[i];
      double scale = 0;
      for (double v : b) scale = std::max(scale, std::abs(v));
      for (size_t j = 0; j < a.size(); ++j)
        ASSERT_NEAR(a[j], b[j], 1e-4 * std::abs(b[j]) + 1e-4 * scale)
            << "parameter " << i << " element " << j;
    }
  }
}

}  // namespace
}  // namespace resin::models
