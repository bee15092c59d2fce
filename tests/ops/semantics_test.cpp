// Forward semantics the gradient checks cannot see: running-statistic updates, eval vs training
// batch norm, tie splitting in max/min, loss definitions, 0-d tensors, and layout of gradients.
#include <gtest/gtest.h>

#include <cmath>

#include "resin/resin.h"

namespace resin {
namespace {

Tensor f64v(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::f64}); }

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

TEST(OpSemantics, BatchNormTrainingUpdatesRunningStats) {
  // Two channels, N=2, H*W=2: channel 0 values {1,2,3,4}, channel 1 values {0,0,2,6}.
  Tensor x = f64v({1, 2, 0, 0, 3, 4, 2, 6}, {2, 2, 2, 1});
  Tensor rm = f64v({0.5, -1}, {2}), rv = f64v({2, 1}, {2});
  Tensor y = batch_norm(x, rm, rv, {}, {}, true, 0.25, 0.0);
  // batch mean {2.5, 2}, biased var {1.25, 6}, unbiased {5/3, 8}
  expect_near(rm.to_vector(), {0.75 * 0.5 + 0.25 * 2.5, 0.75 * -1 + 0.25 * 2});
  expect_near(rv.to_vector(), {0.75 * 2 + 0.25 * 5.0 / 3, 0.75 * 1 + 0.25 * 8});
  // The output uses the batch statistics (biased variance).
  const auto yv = y.to_vector();
  EXPECT_NEAR(yv[0], (1 - 2.5) / std::sqrt(1.25), 1e-12);
  EXPECT_NEAR(yv[7], (6 - 2.0) / std::sqrt(6.0), 1e-12);
  // Without running stats nothing is updated and the result is the same.
  expect_near(batch_norm(x, {}, {}, {}, {}, true, 0.25, 0.0).to_vector(), yv);
}

TEST(OpSemantics, BatchNormEvalUsesRunningStatsWithAndWithoutHistory) {
  Generator g(1);
  Tensor x = randn({2, 3, 2, 2}, {.dtype = DType::f64}, &g).contiguous(MemoryFormat::channels_last);
  Tensor rm = randn({3}, {.dtype = DType::f64}, &g), rv = uniform({3}, 0.5, 2, {.dtype = DType::f64}, &g);
  Tensor w = randn({3}, {.dtype = DType::f64}, &g), b = randn({3}, {.dtype = DType::f64}, &g);
  const auto rm0 = rm.to_vector();
  Tensor plain = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
  w.set_requires_grad(true);
  Tensor tracked = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
  EXPECT_TRUE(tracked.requires_grad());
  expect_near(plain.to_vector(), tracked.to_vector(), 1e-12);
  EXPECT_EQ(rm.to_vector(), rm0) << "eval mode never updates running stats";
  const auto xv = x.to_vector(), pv = plain.to_vector();
  const auto m = rm.to_vector(), v = rv.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t c = static_cast<size_t>((i / 4) % 3);
    EXPECT_NEAR(pv[i], (xv[i] - m[c]) / std::sqrt(v[c] + 1e-5) * wv[c] + bv[c], 1e-12);
  }
}

// No input features: the product is empty, so the output is the bias broadcast (PyTorch's rule).
TEST(OpSemantics, LinearWithNoInputFeaturesGivesTheBias) {
  const Tensor y = linear(zeros({2, 3, 0}), zeros({4, 0}), f64v({1, 2, 3, 4}, {4}).to(DType::f32));
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  std::vector<double> want;
  for (int i = 0; i < 6; ++i) want.insert(want.end(), {1, 2, 3, 4});
  expect_near(y.to_vector(), want);
}

TEST(OpSemantics, MaxMinSplitGradientEvenlyBetweenTies) {
  Tensor x = f64v({1, 3, 3, -2, -2, 0}, {2, 3});
  x.set_requires_grad(true);
  sum(max(x, {1})).backward();
  expect_near(x.grad().to_vector(), {0, 0.5, 0.5, 0, 0, 1});
  x.zero_grad();
  sum(min(x, {1})).backward();
  expect_near(x.grad().to_vector(), {1, 0, 0, 0.5, 0.5, 0});
  x.zero_grad();
  max(x).backward();
  expect_near(x.grad().to_vector(), {0, 0.5, 0.5, 0, 0, 0});
}

TEST(OpSemantics, MaxPoolRoutesGradientToOneElementOfATie) {
  Tensor x = ones({1, 1, 2, 2}, {.dtype = DType::f64, .requires_grad = true});
  sum(max_pool2d(x, {})).backward();
  double total = 0;
  for (double v : x.grad().to_vector()) total += v;
  EXPECT_EQ(total, 1.0);
}

TEST(OpSemantics, CrossEntropyMatchesItsDefinition) {
  Tensor logits = f64v({1.0, 2.0, 0.5, -1.0, 0.0, 3.0}, {2, 3});
  Tensor target = from_vector({1, 2}, {2}, {.dtype = DType::i64});
  auto lse = [](double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); };
  const double l0 = lse(1, 2, 0.5), l1 = lse(-1, 0, 3);
  const double nll0 = l0 - 2.0, nll1 = l1 - 3.0;
  EXPECT_NEAR(cross_entropy(logits, target).item(), (nll0 + nll1) / 2, 1e-12);
  EXPECT_NEAR(cross_entropy(logits, target, {.reduction = Reduction::sum}).item(), nll0 + nll1, 1e-12);
  expect_near(cross_entropy(logits, target, {.reduction = Reduction::none}).to_vector(), {nll0, nll1});
  // Label smoothing eps: (1 - eps) * nll + eps * mean_c(-log p_c).
  const double eps = 0.1;
  const double s0 = (3 * l0 - 3.5) / 3, s1 = (3 * l1 - 2.0) / 3;
  EXPECT_NEAR(cross_entropy(logits, target, {.label_smoothing = eps}).item(),
              ((1 - eps) * nll0 + eps * s0 + (1 - eps) * nll1 + eps * s1) / 2, 1e-12);
  EXPECT_NEAR(nll_loss(log_softmax(logits, 1), target).item(), (nll0 + nll1) / 2, 1e-12);
  EXPECT_NEAR(mse_loss(logits, zeros_like(logits), Reduction::sum).item(), 1 + 4 + 0.25 + 1 + 0 + 9, 1e-12);
}

TEST(OpSemantics, DropoutMaskIsReproducibleAndScaled) {
  Tensor x = ones({1000}, {.dtype = DType::f64});
  Generator g1(5), g2(5);
  Tensor a = dropout(x, 0.25, true, &g1), b = dropout(x, 0.25, true, &g2);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  int64_t kept = 0;
  for (double v : a.to_vector()) {
    EXPECT_TRUE(v == 0.0 || std::abs(v - 1.0 / 0.75) < 1e-12) << v;
    kept += v != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 1000, 0.75, 0.05);
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
}

TEST(OpSemantics, ZeroDimTensors) {
  Tensor s = scalar_tensor(2.0, {.dtype = DType::f64, .requires_grad = true});
  EXPECT_EQ(sum(s, {0}).dim(), 0);
  EXPECT_EQ(mean(s, {-1}, true).dim(), 0);
  EXPECT_EQ(softmax(s, 0).item(), 1.0);
  EXPECT_EQ(log_softmax(s, -1).item(), 0.0);
  EXPECT_TRUE(s.transpose(0, -1).is_same(s));
  EXPECT_THROW(s.size(0), Error);
  EXPECT_THROW(argmax(s, 0), Error);
  EXPECT_THROW(concat({s, s}, 0), Error);
  EXPECT_EQ(stack({s, s}, 0).shape(), Shape({2}));
  mul(s, s).backward();
  EXPECT_EQ(s.grad().item(), 4.0);
}

TEST(OpSemantics, EmptyTensors) {
  Tensor e = zeros({0, 3}, {.dtype = DType::f64});
  EXPECT_EQ(sum(e).item(), 0.0);
  EXPECT_EQ(sum(e, {0}).shape(), Shape({3}));
  EXPECT_EQ(add(e, e).numel(), 0);
  EXPECT_EQ(concat({e, ones({2, 3}, {.dtype = DType::f64})}, 0).shape(), Shape({2, 3}));
  EXPECT_EQ(matmul(zeros({2, 0}, {.dtype = DType::f64}), zeros({0, 3}, {.dtype = DType::f64})).to_vector(),
            std::vector<double>(6, 0.0));
}

TEST(OpSemantics, AvgPoolGraphDoesNotHoldAnInputSizedBuffer) {
  Tensor x = ones({4, 8, 16, 16}, {.dtype = DType::f64, .requires_grad = true});
  const int64_t input_bytes = x.numel() * 8;
  const int64_t before = allocator_stats().current_bytes;
  Tensor y;
  {
    Tensor h = mul(x, 2.0);  // a non-leaf: only the graph could keep its storage alive
    y = avg_pool2d(h, {});
  }
  const int64_t held = allocator_stats().current_bytes - before;
  EXPECT_LT(held, input_bytes / 2) << "y is a quarter of the input; the graph should hold nothing more";
  sum(y).backward();
  for (double v : x.grad().to_vector()) ASSERT_EQ(v, 0.5);
}

TEST(OpSemantics, BackwardChecksGradientDtype) {
  Tensor x = ones({2}, {.dtype = DType::f64, .requires_grad = true});
  Tensor y = mul(x, 2.0);
  EXPECT_THROW(y.backward(ones({2})), Error);
}

}  // namespace
}  // namespace resin
