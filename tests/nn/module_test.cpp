#include <gtest/gtest.h>

#include "resin/models/resnet.h"
#include "resin/models/zoo.h"
#include "resin/nn/init.h"
#include "resin/nn/layers.h"
#include "resin/resin.h"

using namespace resin;

namespace {
std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (auto& [n, _] : v) out.push_back(n);
  return out;
}
}  // namespace

TEST(Module, TorchvisionParameterPaths) {
  models::ResNet net({.block = models::BlockKind::basic, .layers = {1, 1}, .widths = {8, 16},
                      .stem = models::StemKind::cifar, .in_channels = 1, .num_classes = 10});
  auto p = names(net.named_parameters());
  EXPECT_EQ(p.front(), "conv1.weight");
  EXPECT_NE(std::find(p.begin(), p.end(), "layer2.0.downsample.0.weight"), p.end());
  EXPECT_NE(std::find(p.begin(), p.end(), "layer2.0.downsample.1.bias"), p.end());
  EXPECT_EQ(p.back(), "fc.bias");
  auto b = names(net.named_buffers());
  EXPECT_NE(std::find(b.begin(), b.end(), "layer1.0.bn1.running_mean"), b.end());
  EXPECT_NE(std::find(b.begin(), b.end(), "layer2.0.downsample.1.num_batches_tracked"), b.end());
  // named_modules is pre-order with dotted paths.
  auto mods = net.named_modules();
  EXPECT_EQ(mods[0].first, "conv1");
  EXPECT_EQ(mods[2].first, "layer1");
  EXPECT_EQ(mods[3].first, "layer1.0");
}

TEST(Module, StrictLoadReportsMissingUnexpectedAndMismatched) {
  nn::Linear a({.in = 4, .out = 3});
  auto state = a.state_dict();
  state.erase("bias");
  state["extra"] = zeros({1});
  state["weight"] = zeros({3, 5});
  try {
    a.load_state_dict(state, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing keys (1): bias"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected keys (1): extra"), std::string::npos) << m;
    EXPECT_NE(m.find("weight: [3, 5] in the state vs [3, 4] in the model"), std::string::npos) << m;
  }
  // Non-strict loading still refuses mismatched shapes but allows missing/unexpected keys.
  auto ok = a.state_dict();
  ok.erase("bias");
  ok["weight"] = ones({3, 4});
  auto report = a.load_state_dict(ok, false);
  EXPECT_EQ(report.missing, std::vector<std::string>{"bias"});
  EXPECT_EQ(a.weight().to_vector(), std::vector<double>(12, 1.0));
}

TEST(Module, TrainEvalPropagatesAndBatchNormUsesRunningStats) {
  auto seq = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 3, .kernel = 3, .padding = 1}),
      nn::BatchNorm2d({.features = 3}), nn::ReLU()});
  Tensor x = randn({4, 2, 5, 5});
  seq->forward(x);  // training: updates running stats
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm>((*seq)[1]);
  EXPECT_NE(bn->running_mean().to_vector(), std::vector<double>(3, 0.0));
  EXPECT_EQ(bn->own_buffers()[2].second.item(), 1.0);  // num_batches_tracked
  seq->eval();
  EXPECT_FALSE(bn->is_training());
  const auto rm = bn->running_mean().to_vector();
  seq->forward(x);
  EXPECT_EQ(bn->running_mean().to_vector(), rm) << "eval must not touch running statistics";
}

TEST(Module, ParameterCountAndPrinting) {
  nn::Conv2d c({.in = 3, .out = 8, .kernel = 3, .bias = true});
  EXPECT_EQ(c.parameter_count(), 8 * 3 * 9 + 8);
  EXPECT_NE(c.str().find("Conv2d(3, 8, kernel_size=3"), std::string::npos) << c.str();
  nn::Sequential s({nn::ReLU()});
  EXPECT_NE(s.str().find("(0): ReLU"), std::string::npos) << s.str();
}

TEST(Init, KaimingNormalFanOutHasTheRightSpread) {
  Tensor w = empty({256, 64, 3, 3});
  nn::init::kaiming_normal_(w);  // std = sqrt(2 / (256 * 9))
  const auto v = w.to_vector();
  double s = 0, s2 = 0;
  for (double x : v) s += x, s2 += x * x;
  const double mean = s / v.size(), std = std::sqrt(s2 / v.size() - mean * mean);
  EXPECT_NEAR(std, std::sqrt(2.0 / (256 * 9)), 0.01 * std::sqrt(2.0 / (256 * 9)) * 3);
  EXPECT_NEAR(mean, 0.0, 3 * std / std::sqrt(static_cast<double>(v.size())));
}

// Under SkipInitGuard a model gets its parameters' shapes with zeros for every randomly initialised
// value and draws nothing; constant initialisers (BN's gamma = 1) still apply; the guard nests and
// restores; afterwards the same construction draws as before.
TEST(Init, SkipInitGuardGivesShapesWithoutDrawing) {
  auto make = [] { return models::create_model("resnet20", {}); };
  manual_seed(9);
  auto drawn = make();
  const std::string after_drawing = default_generator().state();
  manual_seed(9);
  const std::string before = default_generator().state();
  nn::ModulePtr skipped;
  {
    nn::init::SkipInitGuard outer;
    {
      nn::init::SkipInitGuard inner;
      EXPECT_TRUE(nn::init::SkipInitGuard::active());
    }
    EXPECT_TRUE(nn::init::SkipInitGuard::active()) << "the inner guard restored the outer one's state";
    skipped = make();
    nn::Embedding emb(5, 3);
    nn::Linear fc({.in = 4, .out = 2});
    for (const Tensor& t : {emb.named_parameters()[0].second, fc.weight(), fc.bias()})
      EXPECT_EQ(t.to_vector(), std::vector<double>(t.numel(), 0.0));
  }
  EXPECT_FALSE(nn::init::SkipInitGuard::active());
  EXPECT_EQ(default_generator().state(), before) << "a skipped initialisation drew random numbers";
  EXPECT_EQ(skipped->parameter_count(), drawn->parameter_count());
  const auto a = skipped->named_parameters(), b = drawn->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.shape(), b[i].second.shape()) << a[i].first;
    const bool gamma = a[i].first.ends_with("bn1.weight") || a[i].first.ends_with("bn2.weight");
    EXPECT_EQ(a[i].second.to_vector(), std::vector<double>(a[i].second.numel(), gamma ? 1.0 : 0.0))
        << a[i].first;
  }
  // After the guard, building draws exactly as before.
  manual_seed(9);
  auto again = make();
  EXPECT_EQ(default_generator().state(), after_drawing);
  EXPECT_EQ(again->named_parameters()[0].second.to_vector(), drawn->named_parameters()[0].second.to_vector());
}

TEST(Init, ZeroInitLastBatchNormGamma) {
  models::ResNet net({.block = models::BlockKind::basic, .layers = {1}, .widths = {4}, .stem = models::StemKind::cifar,
                      .in_channels = 1, .num_classes = 2, .zero_init_residual = true});
  int found = 0;
  for (auto& [n, p] : net.named_parameters()) {
    if (n != "layer1.0.bn2.weight") continue;
    EXPECT_EQ(p.to_vector(), std::vector<double>(4, 0.0));
    ++found;
  }
  EXPECT_EQ(found, 1);
}

TEST(Module, ToF64ConvertsParametersAndKeepsGrad) {
  nn::Linear l({.in = 2, .out = 2});
  l.to(DType::f64);
  for (auto& [n, p] : l.named_parameters()) {
    EXPECT_EQ(p.dtype(), DType::f64) << n;
    EXPECT_TRUE(p.requires_grad()) << n;
  }
  Tensor y = l.forward(randn({3, 2}, {.dtype = DType::f64}));
  sum(y).backward();
  EXPECT_TRUE(l.weight().grad().defined());
}
