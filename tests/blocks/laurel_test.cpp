// LAuReL: at initialisation every variant equals the block without it, exactly; the added
// parameter counts; and each term computes its formula once its parameters move.
#include "resin/blocks/laurel.h"
#include "block_test_util.h"
#include "resin/backend/backend.h"
#include "resin/blocks/units.h"

namespace resin::testing {
namespace {

using namespace blocks;

UnitOptions preact(int64_t d) {
  return {.residual = {.in = d, .out = d, .layer = Layer::linear}, .placement = UnitPlacement::full_preact};
}

void fill(const Tensor& t, double v) {
  NoGradGuard ng;
  backend::backend_for(t).fill(t, v);
}

Tensor param(const nn::Module& m, const std::string& name) {
  for (auto& [n, p] : m.named_parameters())
    if (n == name) return p;
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

struct Variant {
  const char* name;
  LaurelOptions o;
};
const Variant kVariants[] = {
    {"RW", {.features = 16, .rw = true}},
    {"LR", {.features = 16, .lr_rank = 4}},
    {"PA", {.features = 16, .pa_k = 3}},
    {"RW+LR", {.features = 16, .rw = true, .lr_rank = 4}},
    {"RW+LR+PA", {.features = 16, .rw = true, .lr_rank = 4, .pa_k = 3, .pa_rank = 4}},
};

TEST(Laurel, AtInitEveryVariantEqualsThePlainResidualStack) {
  for (const Variant& v : kVariants) {
    manual_seed(21);
    // The same branch modules drive both stacks.
    std::vector<nn::ModulePtr> branches;
    for (int i = 0; i < 6; ++i) branches.push_back(make_branch(preact(16)));
    LaurelSequence laurel;
    nn::Sequential plain;
    for (auto& b : branches) {
      laurel.push_back(std::make_shared<LaurelBlock>(b, v.o));
      plain.push_back(
          std::make_shared<Residual>(b, ResidualOptions{.in = 16, .out = 16, .layer = Layer::linear}));
    }
    laurel.eval();  // BN as a fixed map: both stacks see identical branch outputs
    plain.eval();
    Tensor x = randn({8, 16});
    EXPECT_TRUE(same_values(laurel.forward(x), plain.forward(x))) << v.name;
    // Not vacuous: moving the LAuReL parameters changes the output.
    for (auto& [n, p] : laurel.named_parameters()) {
      if (n.find("rw") != std::string::npos) fill(p.narrow(0, 0, 1), 0.5);  // a ≠ b: α ≠ β
      if (n.find("lr_b") != std::string::npos || n.find("pa_gamma") != std::string::npos) fill(p, 0.3);
    }
    EXPECT_GT(max_abs_diff(laurel.forward(x), plain.forward(x)), 1e-3) << v.name;
  }
}

TEST(Laurel, AddedParameterCounts) {
  // LAB E8 P2: RW adds 2 per layer, LR 2rD, PA k (+2rD with a low-rank h).
  const int64_t D = 16, r = 4, k = 3;
  auto added = [&](LaurelOptions o) { return LaurelBlock(make_branch(preact(D)), o).added_parameters(); };
  EXPECT_EQ(added({.features = D, .rw = true}), 2);
  EXPECT_EQ(added({.features = D, .lr_rank = r}), 2 * r * D);
  EXPECT_EQ(added({.features = D, .pa_k = k}), k);
  EXPECT_EQ(added({.features = D, .pa_k = k, .pa_rank = r}), 2 * r * D + k);
  EXPECT_EQ(added({.features = D, .rw = true, .lr_rank = r, .pa_k = k, .pa_rank = r}), 2 + 4 * r * D + k);
  LaurelBlock b(make_branch(preact(D)), {.features = D, .rw = true});
  EXPECT_EQ(b.parameter_count(), b.child("branch")->parameter_count() + 2);
}

TEST(Laurel, TermsComputeTheirFormulas) {
  manual_seed(22);
  const int64_t D = 6;
  auto f = make_branch(
      {.residual = {.in = D, .out = D, .layer = Layer::linear}, .placement = UnitPlacement::ln_pre});
  LaurelBlock b(f, {.features = D, .rw = true, .lr_rank = 2, .pa_k = 3});
  fill(param(b, "rw").narrow(0, 0, 1), 0.7);   // a
  fill(param(b, "rw").narrow(0, 1, 1), -0.2);  // b
  Tensor lr_b = param(b, "lr_b");
  {
    NoGradGuard ng;
    backend::backend_for(lr_b).copy(randn({D, 2}), lr_b);
  }
  Tensor gamma = param(b, "pa_gamma");
  {
    NoGradGuard ng;
    backend::backend_for(gamma).copy(from_vector({0.5, -0.25, 0.125}, {3}), gamma);
  }
  Tensor x = randn({4, D}), h1 = randn({4, D}), h2 = randn({4, D}), h3 = randn({4, D});
  // history oldest first: x_{i−1} = h3, x_{i−2} = h2 (k = 3 uses j = 0, 1, 2).
  Tensor y = b.forward(x, {h1, h2, h3});
  const double ea = std::exp(0.7), eb = std::exp(-0.2);
  const double alpha = 2 * ea / (ea + eb), beta = 2 * eb / (ea + eb);
  Tensor g = x + linear(linear(x, param(b, "lr_a")), lr_b) + 0.5 * x + (-0.25) * h3 + 0.125 * h2;
  Tensor want = alpha * f->forward(x) + beta * g;
  EXPECT_LT(max_abs_diff(y, want), 1e-5);
}

TEST(Laurel, ConvFeaturesUseOneByOneMaps) {
  manual_seed(23);
  auto f = make_branch(
      {.residual = {.in = 4, .out = 4, .layer = Layer::conv}, .placement = UnitPlacement::full_preact});
  LaurelBlock b(f, {.features = 4, .layer = Layer::conv, .lr_rank = 2});
  Tensor lr_b = param(b, "lr_b");
  fill(lr_b, 0.1);
  Tensor x = randn({2, 4, 5, 5});
  b.eval();
  Tensor want = f->forward(x) + x +
                conv2d(conv2d(x, param(b, "lr_a").reshape({2, 4, 1, 1})), lr_b.reshape({4, 2, 1, 1}));
  EXPECT_LT(max_abs_diff(b.forward(x), want), 1e-5);
}

}  // namespace
}  // namespace resin::testing
