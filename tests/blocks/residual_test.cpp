// The residual combinator: every Mix, Post and Shortcut computes its formula; ReZero/SkipInit are
// exactly the identity at α = 0; shortcut dropout, drop-path and the attenuation schedule.
#include "block_test_util.h"
#include "resin/backend/backend.h"
#include "resin/blocks/resnet_blocks.h"
#include "resin/blocks/units.h"

namespace resin::testing {
namespace {

using namespace blocks;

std::shared_ptr<nn::Linear> lin(int64_t in, int64_t out) {
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out});
}

// A branch without normalisation, so repeated calls give identical values.
nn::ModulePtr tanh_branch(int64_t d) {
  return std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{lin(d, d), nn::Tanh(), lin(d, d)});
}

Tensor gate_of(Residual& r, const char* child, const Tensor& x) {
  return sigmoid(r.child(child)->forward(x));
}

TEST(Residual, ReZeroAtZeroIsExactlyTheIdentity) {
  manual_seed(1);
  Residual r(tanh_branch(8), {.in = 8, .out = 8, .layer = Layer::linear, .mix = Mix::learned_scale});
  EXPECT_EQ(r.alpha().item(), 0.0);
  Tensor x = randn({5, 8});
  EXPECT_TRUE(same_values(r.forward(x), x));
  // α reaches its gradient (the branch's parameters do not, until α moves).
  Tensor xi = x.clone().set_requires_grad(true);
  weighted_sum(r.forward(xi)).backward();
  EXPECT_NE(r.alpha().grad().item(), 0.0);
  // And the block stops being the identity once α moves.
  {
    NoGradGuard ng;
    backend::backend_for(r.alpha()).fill(r.alpha(), 0.5);
  }
  EXPECT_GT(max_abs_diff(r.forward(x), x), 1e-3);
}

TEST(Residual, SkipInitConvUnitWithBatchNormIsExactlyTheIdentity) {
  manual_seed(2);
  auto u = make_unit({.residual = {.in = 4, .out = 4, .layer = Layer::conv, .mix = Mix::learned_scale},
                      .placement = UnitPlacement::full_preact});
  Tensor x = randn({3, 4, 5, 5});
  EXPECT_TRUE(same_values(u->forward(x), x));
}

TEST(Residual, NormFreeReZeroStackOf100UnitsIsTheIdentity) {
  // LAB E11 P1: the network output equals the stem output exactly.
  manual_seed(3);
  nn::Sequential s;
  for (int i = 0; i < 100; ++i)
    s.push_back(
        make_unit({.residual = {.in = 16, .out = 16, .layer = Layer::linear, .mix = Mix::learned_scale},
                   .placement = UnitPlacement::full_preact,
                   .norm = false}));
  Tensor x = randn({4, 16});
  EXPECT_TRUE(same_values(s.forward(x), x));
}

TEST(Residual, EveryMixComputesItsFormula) {
  manual_seed(4);
  Tensor x = randn({6, 8});
  auto check = [&](const ResidualOptions& o, auto expected) {
    auto r = std::make_shared<Residual>(tanh_branch(8), o);
    const Tensor f = r->branch(x);
    EXPECT_LT(max_abs_diff(r->forward(x), expected(*r, f)), 1e-6) << r->formula();
  };
  ResidualOptions base{.in = 8, .out = 8, .layer = Layer::linear};
  auto with = [&](Mix m) {
    ResidualOptions o = base;
    o.mix = m;
    return o;
  };
  check(with(Mix::none), [&](Residual&, const Tensor& f) { return f; });
  check(with(Mix::sum), [&](Residual&, const Tensor& f) { return x + f; });
  ResidualOptions scaled = with(Mix::scaled);
  scaled.shortcut_scale = 0.5;
  scaled.branch_scale = 0.25;
  check(scaled, [&](Residual&, const Tensor& f) { return 0.5 * x + 0.25 * f; });
  ResidualOptions ls = with(Mix::learned_scale);
  ls.alpha_init = 0.3;
  check(ls, [&](Residual&, const Tensor& f) { return x + 0.3 * f; });
  check(with(Mix::exclusive_gate), [&](Residual& r, const Tensor& f) {
    Tensor g = gate_of(r, "gate", x);
    return (1.0 - g) * x + g * f;
  });
  check(with(Mix::shortcut_gate),
        [&](Residual& r, const Tensor& f) { return (1.0 - gate_of(r, "gate", x)) * x + f; });
  check(with(Mix::carry_gate),
        [&](Residual& r, const Tensor& f) { return gate_of(r, "carry", x) * x + gate_of(r, "gate", x) * f; });
  ResidualOptions post = base;
  post.post = Post::relu;
  check(post, [&](Residual&, const Tensor& f) { return relu(x + f); });
  post.post = Post::ln;
  check(post, [&](Residual&, const Tensor& f) { return layer_norm(x + f, {8}, ones({8}), zeros({8})); });
}

TEST(Residual, GateBiasIsALearnableParameterStartingAtTheGivenValue) {
  manual_seed(5);
  Residual r(tanh_branch(8),
             {.in = 8, .out = 8, .layer = Layer::linear, .mix = Mix::shortcut_gate, .gate_bias = -6.0});
  Tensor b;
  for (auto& [n, p] : r.named_parameters())
    if (n == "gate.bias") b = p;
  ASSERT_TRUE(b.defined());
  for (double v : b.to_vector()) EXPECT_EQ(v, -6.0);
  weighted_sum(r.forward(randn({4, 8}))).backward();
  ASSERT_TRUE(b.grad().defined());
  EXPECT_GT(max_abs(b.grad()), 0.0);
}

TEST(Residual, ShortcutDropoutWithoutRescalingKeepsTheBareMask) {
  manual_seed(6);
  // A zero branch isolates the shortcut term.
  auto zero = std::make_shared<nn::Lambda>("Zero", [](const Tensor& t) { return mul(t, 0.0); });
  Residual r(zero, {.in = 1, .out = 1, .layer = Layer::linear, .shortcut_dropout = 0.5});
  Tensor x = add(rand({4000, 1}), 1.0);
  const auto y = r.forward(x).to_vector(), xs = x.to_vector();
  int64_t kept = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_TRUE(y[i] == 0.0 || y[i] == xs[i]) << "element " << i << ": " << y[i] << " vs " << xs[i];
    kept += y[i] != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 4000.0, 0.5, 0.05);
  r.eval();
  EXPECT_LT(max_abs_diff(r.forward(x), 0.5 * x), 1e-7);
  // With rescaling: inverted dropout, identity in eval.
  Residual s(
      zero,
      {.in = 1, .out = 1, .layer = Layer::linear, .shortcut_dropout = 0.5, .shortcut_dropout_rescale = true});
  for (double v : s.forward(x).to_vector()) EXPECT_TRUE(v == 0.0 || v > 1.9) << v;
  s.eval();
  EXPECT_TRUE(same_values(s.forward(x), x));
}

TEST(Residual, DropPathDropsWholeSamples) {
  manual_seed(7);
  auto one = std::make_shared<nn::Lambda>("One", [](const Tensor& t) { return ones_like(t); });
  Residual r(one, {.in = 3, .out = 3, .layer = Layer::linear, .drop_path = 0.25});
  Tensor x = zeros({2000, 3});
  Tensor y = r.forward(x);
  int64_t dropped = 0;
  for (int64_t n = 0; n < 2000; ++n) {
    const auto row = y.select(0, n).to_vector();
    ASSERT_TRUE(row[0] == row[1] && row[1] == row[2]) << "sample " << n << " partly dropped";
    ASSERT_TRUE(row[0] == 0.0 || std::abs(row[0] - 1.0 / 0.75) < 1e-6) << row[0];
    dropped += row[0] == 0.0;
  }
  EXPECT_NEAR(static_cast<double>(dropped) / 2000.0, 0.25, 0.03);
  r.eval();
  EXPECT_TRUE(same_values(r.forward(x), ones({2000, 3})));
}

TEST(Residual, LinearDropPathSchedule) {
  const auto p = linear_drop_path(4, 0.2);
  ASSERT_EQ(p.size(), 4u);
  for (int l = 1; l <= 4; ++l) EXPECT_EQ(p[static_cast<size_t>(l - 1)], 0.2 * l / 4.0);
  EXPECT_THROW(linear_drop_path(3, 1.0), Error);
}

TEST(Residual, AttenuationScheduleFollowsTheFormulaExactly) {
  // α_l = 1 − (1 − α_min)·l/(S − 1): exactly 1 for the first sublayer and α_min for the last.
  for (int64_t S : {1, 2, 16, 24}) {
    const auto a = attenuation_schedule(S, 0.6);
    ASSERT_EQ(static_cast<int64_t>(a.size()), S);
    EXPECT_EQ(a[0], 1.0);
    for (int64_t l = 0; l < S; ++l)
      EXPECT_EQ(a[static_cast<size_t>(l)],
                1.0 - (1.0 - 0.6) * (S > 1 ? static_cast<double>(l) / static_cast<double>(S - 1) : 0.0));
    if (S > 1) {
      EXPECT_DOUBLE_EQ(a.back(), 0.6);
    }
    for (size_t l = 1; l < a.size(); ++l) EXPECT_LT(a[l], a[l - 1]);
  }
  // LAB §7: ViT-B (24 sublayers) at α_min = 0.6 gives α_eff = Π α_l ≈ 3.6e-3.
  double eff = 1;
  for (double v : attenuation_schedule(24, 0.6)) eff *= v;
  EXPECT_NEAR(eff, 3.6e-3, 0.05e-3);
}

TEST(Residual, ShortcutKinds) {
  manual_seed(8);
  Tensor x = randn({2, 4, 6, 6});
  // Option A: subsample and append zero channels, split before and after.
  auto a = make_shortcut(Shortcut::zero_pad, Layer::conv, 4, 8, 2);
  ASSERT_TRUE(a);
  Tensor ya = a->forward(x);
  EXPECT_EQ(ya.shape(), (Shape{2, 8, 3, 3}));
  EXPECT_TRUE(
      same_values(ya.narrow(1, 2, 4).contiguous(), x.slice(2, 0, 6, 2).slice(3, 0, 6, 2).contiguous()));
  EXPECT_EQ(max_abs(ya.narrow(1, 0, 2)), 0.0);
  EXPECT_EQ(a->parameter_count(), 0);
  // Option B: identity where the shape is kept, 1x1 conv + BN where it changes; option C: always.
  EXPECT_EQ(make_shortcut(Shortcut::projection, Layer::conv, 4, 4, 1), nullptr);
  EXPECT_EQ(make_shortcut(Shortcut::identity, Layer::conv, 4, 4, 1), nullptr);
  auto c = make_shortcut(Shortcut::projection_all, Layer::conv, 4, 4, 1);
  ASSERT_TRUE(c);
  std::vector<std::string> names;
  for (auto& [n, _] : c->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "1.weight", "1.bias"}));
  auto b = make_shortcut(Shortcut::projection, Layer::conv, 4, 8, 2);
  EXPECT_EQ(b->forward(x).shape(), (Shape{2, 8, 3, 3}));
  // ResNet-D: BN(W · avgpool_2(x)).
  auto d = make_shortcut(Shortcut::avg_projection, Layer::conv, 4, 8, 2);
  auto& ds = static_cast<nn::Sequential&>(*d);
  ASSERT_EQ(ds.size(), 3u);
  Tensor want =
      ds[2]->forward(conv2d(avg_pool2d(x, {.kernel = {2, 2}}), static_cast<nn::Conv2d&>(*ds[1]).weight()));
  EXPECT_LT(max_abs_diff(d->forward(x), want), 1e-6);
  // 1x1 conv shortcut (He 2016 Table 1): a bare convolution, even at equal shapes.
  auto k = make_shortcut(Shortcut::conv1x1, Layer::conv, 4, 4, 1);
  EXPECT_EQ(k->type_name(), "Conv2d");
  EXPECT_EQ(make_shortcut(Shortcut::conv1x1, Layer::linear, 4, 6, 1)->forward(randn({3, 4})).shape(),
            (Shape{3, 6}));
  EXPECT_THROW(make_shortcut(Shortcut::zero_pad, Layer::linear, 4, 8, 1), Error);
  EXPECT_THROW(Residual(tanh_branch(4), {.in = 4, .out = 4, .layer = Layer::conv, .post = Post::ln}), Error);
}

bool has_child(const nn::Module& m, const std::string& name) {
  for (auto& [n, _] : m.children())
    if (n == name) return true;
  return false;
}

// The branch's module types, in order.
std::vector<std::string> layout(const Residual& r) {
  std::vector<std::string> t;
  for (auto& [_, m] : r.child("branch")->children()) t.push_back(m->type_name());
  return t;
}

TEST(Residual, UnitPlacementsOfHe2016) {
  manual_seed(9);
  const ResidualOptions lin8{.in = 8, .out = 8, .layer = Layer::linear};
  using V = std::vector<std::string>;
  const std::string L = "Linear", B = "BatchNorm1d", R = "ReLU";
  struct Case {
    UnitPlacement p;
    V branch;
    Post post;
  };
  for (const Case& c : {Case{UnitPlacement::original, {L, B, R, L, B}, Post::relu},
                        Case{UnitPlacement::bn_after_add, {L, B, R, L}, Post::bn_relu},
                        Case{UnitPlacement::relu_before_add, {L, B, R, L, B, R}, Post::none},
                        Case{UnitPlacement::relu_preact, {R, L, B, R, L, B}, Post::none},
                        Case{UnitPlacement::full_preact, {B, R, L, B, R, L}, Post::none},
                        Case{UnitPlacement::ln_pre, {"LayerNorm", L, R, L}, Post::none}}) {
    auto u = make_unit({.residual = lin8, .placement = c.p});
    EXPECT_EQ(layout(*u), c.branch) << placement_name(c.p);
    EXPECT_EQ(u->options().post, c.post) << placement_name(c.p);
    // The unit computes post(x + F(x)) with that branch (eval mode: BN is a fixed affine map).
    u->eval();
    Tensor x = randn({5, 8});
    Tensor z = x + u->branch(x);
    Tensor want = c.post == Post::relu      ? relu(z)
                  : c.post == Post::bn_relu ? relu(u->child("post_norm")->forward(z))
                                            : z;
    EXPECT_LT(max_abs_diff(u->forward(x), want), 1e-6) << placement_name(c.p);
  }
  // Conv units: 3x3 convs without bias, stride on the first, projection where the shape changes.
  auto conv = make_unit(
      {.residual = {.in = 4, .out = 8, .stride = 2, .layer = Layer::conv, .shortcut = Shortcut::projection},
       .placement = UnitPlacement::full_preact});
  EXPECT_EQ(conv->forward(randn({2, 4, 8, 8})).shape(), (Shape{2, 8, 4, 4}));
  EXPECT_TRUE(has_child(*conv, "shortcut"));
  // Plain twin: no shortcut module at all.
  auto plain = make_unit({.residual = {.in = 8, .out = 8, .layer = Layer::linear, .mix = Mix::none}});
  EXPECT_FALSE(has_child(*plain, "shortcut"));
  EXPECT_TRUE(has_child(*plain, "branch"));
  EXPECT_EQ(parse_placement("full_preact"), UnitPlacement::full_preact);
  EXPECT_THROW(parse_placement("preact"), Error);
}

TEST(Residual, ZeroInitLastMakesTheBranchZero) {
  manual_seed(10);
  for (UnitPlacement p : {UnitPlacement::original, UnitPlacement::full_preact, UnitPlacement::ln_pre}) {
    auto u = make_unit(
        {.residual = {.in = 8, .out = 8, .layer = Layer::linear}, .placement = p, .zero_init_last = true});
    Tensor x = randn({4, 8});
    EXPECT_EQ(max_abs(u->branch(x)), 0.0) << placement_name(p);
  }
}

TEST(Residual, FixupUnitsStartAsTheIdentityAndScaleW1) {
  manual_seed(11);
  nn::Sequential s;
  for (int i = 0; i < 16; ++i)
    s.push_back(make_unit(
        {.residual = {.in = 256, .out = 256, .layer = Layer::linear}, .placement = UnitPlacement::fixup}));
  EXPECT_EQ(fixup_init(s), 16);
  Tensor x = relu(randn({3, 256}));
  EXPECT_TRUE(same_values(s.forward(x), x));  // relu(x + 0) with x >= 0
  // W1 ~ N(0, 2/fan_out) · L^(-1/2): std = sqrt(2/256)/4.
  Tensor w1;
  for (auto& [n, p] : s.named_parameters())
    if (n == "0.branch.weight1") w1 = p;
  ASSERT_TRUE(w1.defined());
  const auto v = w1.to_vector();
  double ss = 0;
  for (double e : v) ss += e * e;
  EXPECT_NEAR(std::sqrt(ss / static_cast<double>(v.size())), std::sqrt(2.0 / 256.0) / 4.0,
              0.02 * std::sqrt(2.0 / 256.0) / 4.0);
  std::vector<std::string> scalars;
  for (auto& [n, p] : s[0]->named_parameters())
    if (p.dim() == 0) scalars.push_back(n);
  EXPECT_EQ(scalars, (std::vector<std::string>{"branch.bias1a", "branch.bias1b", "branch.bias2a",
                                               "branch.scale", "branch.bias2b"}));
}

TEST(Residual, HighwayLayer) {
  manual_seed(12);
  auto h = make_highway({.features = 8, .gate_bias = -3.0});
  for (double v : h->child("gate")->own_parameters()[1].second.to_vector()) EXPECT_EQ(v, -3.0);
  Tensor x = randn({5, 8});
  Tensor H = relu(h->child("branch")->forward(x)), T = gate_of(*h, "gate", x);
  EXPECT_LT(max_abs_diff(h->forward(x), H * T + x * (1.0 - T)), 1e-6);
  auto c = make_highway({.features = 8, .gate_bias = -1.0, .carry_gate = true, .carry_bias = 1.5});
  Tensor Hc = relu(c->child("branch")->forward(x)), Tc = gate_of(*c, "gate", x), C = gate_of(*c, "carry", x);
  EXPECT_LT(max_abs_diff(c->forward(x), Hc * Tc + x * C), 1e-6);
  for (double v : c->child("carry")->own_parameters()[1].second.to_vector()) EXPECT_EQ(v, 1.5);
  // Conv highway keeps the shape.
  EXPECT_EQ(make_highway({.features = 3, .layer = Layer::conv})->forward(randn({2, 3, 5, 5})).shape(),
            (Shape{2, 3, 5, 5}));
}

}  // namespace
}  // namespace resin::testing
