// Hooks, retain_grad, autograd::grad and backward-node names.
#include <gtest/gtest.h>

#include <cmath>

#include "resin/resin.h"

namespace resin {
namespace {

Tensor vec(const std::vector<double>& v, bool requires_grad = false) {
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::f64});
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

TEST(AutogradHooks, RetainGradOnNonLeaf) {
  Tensor x = vec({1, 2, 3}, true);
  Tensor y = mul(x, 2.0);
  Tensor z = exp(x);
  y.retain_grad();
  sum(mul(y, y)).backward();
  ASSERT_TRUE(y.grad().defined());
  EXPECT_EQ(y.grad().to_vector(), (std::vector<double>{4, 8, 12}));  // 2y
  EXPECT_FALSE(z.grad().defined());
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{8, 16, 24}));
}

TEST(AutogradHooks, RetainedGradSeesHooksRegisteredLater) {
  Tensor x = vec({1, 2}, true);
  Tensor y = mul(x, 3.0);
  y.retain_grad();
  y.register_hook([](const Tensor& g) { return mul(g, 2.0); });
  sum(y).backward();
  EXPECT_EQ(y.grad().to_vector(), (std::vector<double>{2, 2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{6, 6}));
}

TEST(AutogradHooks, NonLeafWithoutRetainGradKeepsNoGrad) {
  Tensor x = vec({1, 2}, true);
  Tensor y = mul(x, 3.0);
  sum(y).backward();
  EXPECT_FALSE(y.grad().defined());
}

TEST(AutogradHooks, LeafHookObservesAndReplaces) {
  Tensor x = vec({1, 2}, true);
  std::vector<double> seen;
  x.register_hook([&](const Tensor& g) {
    seen = g.to_vector();
    return Tensor();  // observe only
  });
  sum(mul(x, x)).backward();
  EXPECT_EQ(seen, (std::vector<double>{2, 4}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 4}));

  Tensor w = vec({1, 2}, true);
  w.register_hook([](const Tensor& g) { return mul(g, 10.0); });
  sum(mul(w, w)).backward();
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{20, 40}));
}

TEST(AutogradHooks, NonLeafHookObservesAndReplacesUpstreamGradient) {
  Tensor x = vec({1, 2}, true);
  Tensor y = mul(x, 3.0);
  std::vector<double> seen;
  y.register_hook([&](const Tensor& g) {
    seen = g.to_vector();
    return Tensor();
  });
  sum(mul(y, y)).backward();
  EXPECT_EQ(seen, (std::vector<double>{6, 12}));  // dL/dy = 2y
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{18, 36}));

  Tensor a = vec({1, 2}, true);
  Tensor b = mul(a, 3.0);
  b.register_hook([](const Tensor& g) { return zeros_like(g); });
  sum(add(mul(b, b), a)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, 1}));  // only the direct path survives
}

TEST(AutogradHooks, HookOnTensorWithoutGradIsAnError) {
  Tensor x = vec({1, 2});
  EXPECT_THROW(x.register_hook([](const Tensor& g) { return g; }), Error);
  EXPECT_THROW(x.retain_grad(), Error);
}

// Post-accumulate hooks (what the data-parallel reducer uses) see the leaf after .grad() was
// updated — once per backward, with the accumulated value — and never under autograd::grad.
TEST(AutogradHooks, PostAccumulateHookSeesTheUpdatedGrad) {
  Tensor x = vec({1, 2}, true);
  std::vector<std::vector<double>> seen;
  x.register_post_accumulate_grad_hook([&](const Tensor& leaf) { seen.push_back(leaf.grad().to_vector()); });
  Tensor y = mul(x, 3.0);
  sum(add(y, y)).backward();  // two paths into x, one accumulation
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (std::vector<double>{6, 6}));
  sum(x).backward();  // accumulates onto the stored gradient
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], (std::vector<double>{7, 7}));
  autograd::grad({sum(x)}, {x}, {ones(Shape{}, {.dtype = DType::f64})});
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_THROW(mul(x, 2.0).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
  EXPECT_THROW(vec({1}).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
}

TEST(AutogradGrad, LeavesDotGradUntouched) {
  Tensor x = vec({1, 2, 3}, true);
  Tensor w = vec({4, 5, 6}, true);
  w.set_grad(vec({100, 100, 100}));
  Tensor y = mul(x, w);
  y.retain_grad();
  Tensor loss = sum(mul(y, y));
  auto g = autograd::grad({loss}, {x, w}, {ones(Shape{}, {.dtype = DType::f64})});
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].to_vector(), (std::vector<double>{2 * 4 * 4, 2 * 10 * 5, 2 * 18 * 6}));
  EXPECT_EQ(g[1].to_vector(), (std::vector<double>{2 * 4 * 1, 2 * 10 * 2, 2 * 18 * 3}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{100, 100, 100}));
  EXPECT_FALSE(y.grad().defined()) << "autograd::grad must not fill retained gradients either";
}

TEST(AutogradGrad, WithRespectToANonLeafAndUnreachedInputs) {
  Tensor x = vec({1, 2}, true);
  Tensor unused = vec({7}, true);
  Tensor h = mul(x, 2.0);
  Tensor loss = sum(mul(h, h));
  auto g = autograd::grad({loss}, {h, unused}, {ones(Shape{}, {.dtype = DType::f64})});
  EXPECT_EQ(g[0].to_vector(), (std::vector<double>{4, 8}));
  EXPECT_EQ(g[1].to_vector(), (std::vector<double>{0}));
}

TEST(AutogradGrad, RetainGraphAllowsRepeatedCalls) {
  Tensor x = vec({1, 2}, true);
  Tensor loss = sum(exp(x));
  auto g1 = autograd::grad({loss}, {x}, {ones(Shape{}, {.dtype = DType::f64})}, true);
  auto g2 = autograd::grad({loss}, {x}, {ones(Shape{}, {.dtype = DType::f64})});
  EXPECT_EQ(g1[0].to_vector(), g2[0].to_vector());
  EXPECT_THROW(autograd::grad({loss}, {x}, {ones(Shape{}, {.dtype = DType::f64})}), Error);
}

// Every op records a node named after it.
TEST(AutogradNodeNames, NamedAfterTheirOps) {
  Tensor x = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, {1, 2, 3, 3},
                         {.dtype = DType::f64});
  x.set_requires_grad(true);
  Tensor w = ones({2, 2, 1, 1}, {.dtype = DType::f64, .requires_grad = true});
  Tensor v = vec({1, 2}, true);
  Tensor m = from_vector({1, 2, 3, 4}, {2, 2}, {.dtype = DType::f64, .requires_grad = true});
  auto name = [](const Tensor& t) { return t.grad_fn() ? t.grad_fn()->name() : std::string("<none>"); };
  EXPECT_EQ(name(conv2d(x, w)), "Conv2dBackward");
  EXPECT_EQ(name(add(v, v)), "AddBackward");
  EXPECT_EQ(name(sub(v, v)), "SubBackward");
  EXPECT_EQ(name(mul(v, v)), "MulBackward");
  EXPECT_EQ(name(div(v, v)), "DivBackward");
  EXPECT_EQ(name(add(v, 2.0)), "AddScalarBackward");
  EXPECT_EQ(name(mul(v, 2.0)), "MulScalarBackward");
  EXPECT_EQ(name(mul(v, 1.0)), "MulScalarBackward");
  EXPECT_EQ(name(add(v, 0.0)), "AddScalarBackward");
  EXPECT_EQ(name(relu(v)), "ReluBackward");
  EXPECT_EQ(name(exp(v)), "ExpBackward");
  EXPECT_EQ(name(tanh(v)), "TanhBackward");
  EXPECT_EQ(name(sum(v)), "SumBackward");
  EXPECT_EQ(name(mean(v)), "MeanBackward");
  EXPECT_EQ(name(max(v)), "MaxBackward");
  EXPECT_EQ(name(min(v)), "MinBackward");
  EXPECT_EQ(name(matmul(m, m)), "MatmulBackward");
  EXPECT_EQ(name(batch_norm(x, {}, {}, {}, {}, true)), "BatchNormBackward");
  EXPECT_EQ(name(layer_norm(m, {2})), "LayerNormBackward");
  EXPECT_EQ(name(max_pool2d(x, {.kernel = {2}, .stride = {1}})), "MaxPool2dBackward");
  EXPECT_EQ(name(avg_pool2d(x, {.kernel = {2}, .stride = {1}})), "AvgPool2dBackward");
  EXPECT_EQ(name(softmax(m, 1)), "SoftmaxBackward");
  EXPECT_EQ(name(log_softmax(m, 1)), "LogSoftmaxBackward");
  EXPECT_EQ(name(m.reshape({4})), "ReshapeBackward");
  EXPECT_EQ(name(m.permute({1, 0})), "PermuteBackward");
  EXPECT_EQ(name(m.narrow(0, 1, 1)), "NarrowBackward");
  EXPECT_EQ(name(v.expand({3, 2})), "ExpandBackward");
  EXPECT_EQ(name(m.transpose(0, 1).contiguous()), "CopyBackward");
  EXPECT_EQ(name(concat({v, v}, 0)), "ConcatBackward");
  EXPECT_EQ(name(pad(v, {1, 1})), "PadBackward");
  EXPECT_EQ(name(nll_loss(m, from_vector({0, 1}, {2}, {.dtype = DType::i64}), Reduction::none)),
            "NllLossBackward");
  Generator g(1);
  EXPECT_EQ(name(dropout(v, 0.5, true, &g)), "DropoutBackward");
  EXPECT_EQ(name(embedding(from_vector({1, 0}, {2}, {.dtype = DType::i64}), m)), "EmbeddingBackward");
  EXPECT_EQ(name(where(vec({1, 0}), v, v)), "WhereBackward");
}

}  // namespace
}  // namespace resin
