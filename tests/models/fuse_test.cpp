// models::fuse_for_inference: the fused plan computes the eval-mode forward of the model it was
// built from (BN folded, ReLU/residual post-ops, option-A shortcuts as a 1x1 conv), for every
// ResNet shape it claims, in both input layouts and for several batch sizes.
#include "resin/models/fuse.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "resin/autograd/grad_mode.h"
#include "resin/backend/backend.h"
#include "resin/models/resnet.h"
#include "resin/models/zoo.h"
#include "resin/nn/rewrite.h"

namespace resin::models {
namespace {

// Non-trivial BN statistics and affine parameters, so folding has something to fold.
void randomize_bn(nn::Module& m, uint64_t seed) {
  Generator g(seed);
  for (auto& [name, t] : m.named_buffers()) {
    if (name.ends_with("running_mean") || name.ends_with("running_var")) {
      Tensor r = name.ends_with("running_var") ? uniform(t.shape(), 0.5, 2.0, {}, &g) : randn(t.shape(), {}, &g);
      std::copy_n(r.data<float>(), t.numel(), t.data<float>());
    }
    if (name.ends_with("running_mean")) t.data<float>()[0] = 0;  // keep one exact zero (after the copy)
  }
  for (auto& [name, t] : m.named_parameters())
    if (t.dim() == 1 && name.find("bn") != std::string::npos) {
      Tensor r = uniform(t.shape(), -1.0, 1.5, {}, &g);
      std::copy_n(r.data<float>(), t.numel(), t.data<float>());
    }
}

void expect_fused_matches(const nn::ModulePtr& model, int64_t channels, int64_t size) {
  randomize_bn(*model, 7);
  model->eval();
  NoGradGuard ng;
  nn::ModulePtr fused = fuse_for_inference(model);
  ASSERT_TRUE(is_fused_plan(*fused)) << model->type_name();
  for (int64_t batch : {1, 3}) {
    Tensor x = randn({batch, channels, size, size});
    Tensor want = model->forward(x);
    for (bool cl : {false, true}) {
      Tensor xi = cl ? x.contiguous(MemoryFormat::channels_last) : x;
      Tensor got = fused->forward(xi);
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_LT(nn::relative_error(got, want), 2e-5) << "batch " << batch << (cl ? " channels-last" : " NCHW");
    }
  }
  EXPECT_NE(fused_plan_summary(*fused).find("conv"), std::string::npos);
}

TEST(Fuse, CifarResNetWithOptionAShortcuts) {
  manual_seed(1);
  expect_fused_matches(create_model("resnet20", {.in_channels = 3, .num_classes = 10}), 3, 16);
}

TEST(Fuse, ImageNetStemBasicBlocksWithProjections) {
  manual_seed(2);
  auto net = std::make_shared<ResNet>(ResNetConfig{.layers = {1, 1}, .widths = {16, 32}, .num_classes = 7});
  expect_fused_matches(net, 3, 32);
}

TEST(Fuse, BottlenecksAndGroupsAndPlainTwins) {
  manual_seed(3);
  expect_fused_matches(std::make_shared<ResNet>(ResNetConfig{.block = BlockKind::bottleneck, .layers = {2, 1},
                                                             .widths = {8, 16}, .num_classes = 5}),
                       3, 32);
  expect_fused_matches(std::make_shared<ResNet>(ResNetConfig{.block = BlockKind::bottleneck, .layers = {1, 1},
                                                             .widths = {16, 32}, .num_classes = 5, .groups = 4,
                                                             .width_per_group = 4}),
                       3, 32);
  expect_fused_matches(std::make_shared<ResNet>(ResNetConfig{.layers = {1, 1}, .widths = {16, 32},
                                                             .stem = StemKind::cifar, .in_channels = 1,
                                                             .residual = false}),
                       1, 12);
}

TEST(Fuse, UnsupportedModelsAndTheReferenceBackendAreReturnedUnchanged) {
  manual_seed(4);
  auto dense = create_model("densenet40_k12", {.in_channels = 3});
  EXPECT_EQ(fuse_for_inference(dense), dense);
  auto preact = create_model("preact_resnet110", {.in_channels = 3});
  EXPECT_EQ(fuse_for_inference(preact), preact);
  auto net = create_model("resnet20", {.in_channels = 3});
  {
    backend::ForceReferenceGuard ref;
    EXPECT_EQ(fuse_for_inference(net), net);
  }
  EXPECT_FALSE(is_fused_plan(*net));
  EXPECT_EQ(fused_plan_summary(*net), "");
}

TEST(Fuse, TheFusedModuleIsASnapshotForInferenceOnly) {
  manual_seed(5);
  auto net = create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  net->eval();
  auto fused = fuse_for_inference(net);
  NoGradGuard ng;
  Tensor x = randn({2, 1, 8, 8});
  Tensor before = fused->forward(x);
  for (auto& p : net->parameters()) std::fill_n(p.data<float>(), p.numel(), 0.5f);
  EXPECT_EQ(nn::relative_error(fused->forward(x), before), 0.0);
  EXPECT_TRUE(fused->parameters().empty());
  EXPECT_THROW(fused->train(), Error);
  EXPECT_THROW(fused->forward(randn({2, 3, 8, 8})), Error);  // wrong channel count
  EXPECT_THROW(fused->forward(randn({2, 8})), Error);
}

// oneDNN's ReLU post-op maps NaN to 0, so a fused plan would hide a NaN behind finite logits. It
// refuses non-finite inputs and parameters with an error instead; the module itself propagates NaN.
TEST(Fuse, NonFiniteInputsAndParametersAreRefusedNotHidden) {
  manual_seed(6);
  auto net = create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  net->eval();
  auto fused = fuse_for_inference(net);
  ASSERT_TRUE(is_fused_plan(*fused));
  NoGradGuard ng;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()})
    for (bool cl : {false, true}) {
      Tensor x = randn({3, 1, 8, 8});
      x.data<float>()[2 * 64 + 5] = bad;  // sample 2
      Tensor xi = cl ? x.contiguous(MemoryFormat::channels_last) : x;
      if (std::isnan(bad)) {
        Tensor want = net->forward(xi);
        for (int64_t k = 0; k < 10; ++k)
          EXPECT_TRUE(std::isnan(want.data<float>()[20 + k])) << "module, logit " << k;
      }
      try {
        fused->forward(xi);
        ADD_FAILURE() << "a non-finite input ran through the fused plan";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("(sample 2) has a NaN or infinite value"), std::string::npos)
            << e.what();
      }
      EXPECT_NO_THROW(fused->forward(randn({3, 1, 8, 8})));  // the plan still runs finite inputs
    }
  for (auto& p : net->parameters())
    if (p.dim() == 4) {
      p.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
      break;
    }
  EXPECT_THROW(fuse_for_inference(net), Error);
}

}  // namespace
}  // namespace resin::models
