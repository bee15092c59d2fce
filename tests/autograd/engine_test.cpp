// The backward engine: deep graphs, fan-out accumulation, requires_grad propagation, detach,
// NoGradGuard, non-scalar roots, saved-tensor release and retain_graph.
#include <gtest/gtest.h>
#include <pthread.h>

#include <cmath>
#include <functional>
#include <thread>

#include "resin/backend/backend.h"
#include "resin/resin.h"

namespace resin {
namespace {

Tensor vec(const std::vector<double>& v, bool requires_grad = false) {
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::f64});
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
}

TEST(AutogradEngine, ChainOf1001ResidualStepsBackward) {
  Tensor x = vec({0.3, -1.2, 2.0}, true);
  Tensor y = x;
  const int steps = 1001;  // 3 ops per step: tanh, mul-by-scalar, add
  for (int i = 0; i < steps; ++i) y = add(y, mul(tanh(y), 0.01));
  sum(y).backward();
  // Reference: dy_{i+1}/dy_i = 1 + 0.01 (1 - tanh(y_i)^2), multiplied along the chain.
  std::vector<double> want;
  for (double v : {0.3, -1.2, 2.0}) {
    double d = 1;
    for (int i = 0; i < steps; ++i) {
      const double t = std::tanh(v);
      d *= 1 + 0.01 * (1 - t * t);
      v += 0.01 * t;
    }
    want.push_back(d);
  }
  expect_near(x.grad().to_vector(), want, 1e-10);
}

// Runs f on a thread with a 1 MiB stack, so recursion proportional to graph depth overflows
// quickly (and deterministically) instead of only past ~100k nodes on the default 8 MiB stack.
void run_with_small_stack(const std::function<void()>& f) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  pthread_t th;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&th, &attr, trampoline, const_cast<std::function<void()>*>(&f)), 0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
}

TEST(AutogradEngine, DeepGraphBackwardAndReleaseUseBoundedStack) {
  // 30k nodes: destroying the graph node by node recursively needs far more than 1 MiB of stack.
  Tensor x = vec({1.0}, true);
  run_with_small_stack([&] {
    {
      Tensor y = x;
      for (int i = 0; i < 30000; ++i) y = mul(y, 1.0);
      sum(y).backward();
    }
    Tensor y = x;
    for (int i = 0; i < 30000; ++i) y = add(y, 0.5);
    // no backward: the whole graph is released when y goes out of scope
  });
  EXPECT_EQ(x.grad().item(), 1.0);
}

TEST(AutogradEngine, GradientsAccumulateAtFanOut) {
  Tensor x = vec({0.5, -1.0, 2.0}, true);
  Tensor y = add(add(mul(x, 2.0), mul(x, x)), exp(x));  // x used four times
  sum(y).backward();
  std::vector<double> want;
  for (double v : {0.5, -1.0, 2.0}) want.push_back(2 + 2 * v + std::exp(v));
  expect_near(x.grad().to_vector(), want);
}

// add_relu's output feeding several consumers (a residual block's output feeds the next branch and
// shortcut): the engine hands AddReluBackward the first two gradients unsummed and it adds them in its
// masking pass. Integer-valued gradients make every sum exact, so any mistake in what is summed or
// masked shows; hooks, retain_grad and autograd::grad must see the sum (the engine sums first then).
TEST(AutogradEngine, AddReluTakesItsGradientSumFused) {
  const Shape s{2, 16, 3, 5};
  auto ints = [&s](int64_t k) {  // small integers, some zero
    Tensor t = empty(s);
    for (int64_t i = 0; i < s.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * k) % 9 - 4);
    return t;
  };
  const Tensor c = ints(7), d = ints(5);
  for (int consumers : {1, 2, 3})
    for (int observe = 0; observe < 3; ++observe) {  // 0: nothing, 1: a hook, 2: retain_grad
      Tensor a = randn(s), b = randn(s);
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor y = add_relu(a, b);
      Tensor seen;
      if (observe == 1)
        y.register_hook([&seen](const Tensor& g) {
          seen = g.clone();
          return Tensor();
        });
      if (observe == 2) y.retain_grad();
      Tensor loss = sum(mul(y, c));
      if (consumers >= 2) loss = add(loss, sum(y));
      if (consumers >= 3) loss = add(loss, sum(mul(y, d)));
      loss.backward();
      const std::string what = std::to_string(consumers) + " consumers, observe " + std::to_string(observe);
      const float *yp = y.data<float>(), *cp = c.data<float>(), *dp = d.data<float>();
      const float *ga = a.grad().data<float>(), *gb = b.grad().data<float>();
      for (int64_t i = 0; i < s.numel(); ++i) {
        const float g = cp[i] + (consumers >= 2 ? 1.0f : 0.0f) + (consumers >= 3 ? dp[i] : 0.0f);
        ASSERT_EQ(ga[i], yp[i] > 0 ? g : 0.0f) << what << " at " << i;
        ASSERT_EQ(gb[i], ga[i]) << what << " at " << i;
        if (observe == 1) {
          ASSERT_EQ(seen.data<float>()[i], g) << what << " hook at " << i;
        }
        if (observe == 2) {
          ASSERT_EQ(y.grad().data<float>()[i], g) << what << " retained at " << i;
        }
      }
    }
  Tensor a = randn(s);
  a.set_requires_grad(true);
  Tensor y = add_relu(a, c);
  const auto g = autograd::grad({add(sum(mul(y, c)), sum(y))}, {y}, {ones(Shape{})});
  EXPECT_EQ(g[0].to_vector(), add(c, 1.0).to_vector());
}

// The engine's side of Node::fuses_gradient_sum, with a probe node (identity forward): apply_sum
// gets the last delivered gradient apart, once per backward, only when there are several and nothing
// observes the node's output; the gradient reaching the input is the sum either way.
struct SumProbe : autograd::Node {
  int* fused_calls = nullptr;
  std::string name() const override { return "SumProbe"; }
  bool fuses_gradient_sum() const override { return true; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {g[0]}; }
  std::vector<Tensor> apply_sum(std::vector<Tensor>&& g, const Tensor& second) override {
    ++*fused_calls;
    return {add(g[0], second)};
  }
};

TEST(AutogradEngine, AFusingNodeGetsItsLastGradientApart) {
  for (int consumers : {1, 2, 3, 4})
    for (bool hooked : {false, true}) {
      int fused = 0;
      Tensor x = vec({1, 2, 3}, true);
      Tensor y = x.detach().clone();
      auto probe = std::make_shared<SumProbe>();
      probe->fused_calls = &fused;
      autograd::set_history(probe, {&x}, {&y});
      if (hooked) y.register_hook([](const Tensor&) { return Tensor(); });
      Tensor loss = sum(mul(y, 1.0));
      for (int k = 2; k <= consumers; ++k) loss = add(loss, sum(mul(y, static_cast<double>(k))));
      loss.backward();
      const double total = consumers * (consumers + 1) / 2.0;  // 1 + 2 + ... + consumers
      EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{total, total, total})) << consumers;
      EXPECT_EQ(fused, consumers >= 2 && !hooked ? 1 : 0) << consumers << " consumers, hooked " << hooked;
    }
}

// Roots that repeat a tensor deliver to its node before any node runs: with the node also reached
// through the graph, all three gradients must arrive (1 + 1 from the roots, 2 through mul).
TEST(AutogradEngine, AFusingNodeKeepsEveryGradientOfRepeatedRoots) {
  int fused = 0;
  Tensor x = vec({1, 2}, true);
  Tensor y = x.detach().clone();
  auto probe = std::make_shared<SumProbe>();
  probe->fused_calls = &fused;
  autograd::set_history(probe, {&x}, {&y});
  Tensor z = mul(y, 2.0);
  autograd::run_backward({y, y, z}, {ones({2}, {.dtype = DType::f64}), ones({2}, {.dtype = DType::f64}),
                                     ones({2}, {.dtype = DType::f64})},
                         false);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{4, 4}));
  EXPECT_EQ(fused, 1);
}

TEST(AutogradEngine, DiamondRunsSharedNodeOnce) {
  Tensor x = vec({0.1, 0.7}, true);
  Tensor a = exp(x);
  Tensor d = add(mul(a, 2.0), mul(a, 3.0));
  sum(d).backward();
  expect_near(x.grad().to_vector(), {5 * std::exp(0.1), 5 * std::exp(0.7)});
}

TEST(AutogradEngine, GradAccumulatesAcrossBackwardCallsUntilZeroed) {
  Tensor x = vec({1.0, 2.0}, true);
  sum(mul(x, x)).backward();
  sum(mul(x, 3.0)).backward();
  expect_near(x.grad().to_vector(), {2 + 3, 4 + 3});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x).backward();
  expect_near(x.grad().to_vector(), {1, 1});
}

TEST(AutogradEngine, RequiresGradPropagation) {
  Tensor a = vec({1, 2}, true), b = vec({3, 4});
  EXPECT_TRUE(a.is_leaf());
  EXPECT_TRUE(b.is_leaf());
  Tensor c = add(a, b);
  EXPECT_TRUE(c.requires_grad());
  EXPECT_FALSE(c.is_leaf());
  ASSERT_NE(c.grad_fn(), nullptr);
  Tensor d = mul(b, b);
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.grad_fn(), nullptr);
  EXPECT_TRUE(sum(c).requires_grad());
  EXPECT_TRUE(c.reshape({2, 1}).requires_grad());
  EXPECT_TRUE(c.transpose(0, 0).requires_grad());
  // Comparisons and argmax are never differentiable.
  EXPECT_FALSE(gt(c, 0.0).requires_grad());
  EXPECT_FALSE(argmax(c, 0).requires_grad());
}

TEST(AutogradEngine, DetachSharesStorageWithoutHistory) {
  Tensor x = vec({1, 2, 3}, true);
  Tensor y = mul(x, 2.0);
  Tensor yd = y.detach();
  EXPECT_FALSE(yd.requires_grad());
  EXPECT_EQ(yd.grad_fn(), nullptr);
  EXPECT_EQ(yd.raw_data(), y.raw_data());
  // Gradient does not flow through the detached branch.
  sum(add(mul(yd, x), x)).backward();
  expect_near(x.grad().to_vector(), {1 + 2, 1 + 4, 1 + 6});
}

TEST(AutogradEngine, NoGradGuardStopsRecordingAndRestores) {
  Tensor x = vec({1, 2}, true);
  EXPECT_TRUE(GradMode::is_enabled());
  {
    NoGradGuard g1;
    EXPECT_FALSE(GradMode::is_enabled());
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    {
      NoGradGuard g2;
      EXPECT_FALSE(GradMode::is_enabled());
    }
    EXPECT_FALSE(GradMode::is_enabled());
    // Grad mode is per thread.
    bool other_thread_enabled = false;
    std::thread([&] { other_thread_enabled = GradMode::is_enabled(); }).join();
    EXPECT_TRUE(other_thread_enabled);
  }
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_TRUE(mul(x, x).requires_grad());
}

TEST(AutogradEngine, GradientsThemselvesCarryNoHistory) {
  Tensor x = vec({1, 2}, true);
  sum(mul(x, x)).backward();
  EXPECT_FALSE(x.grad().requires_grad());
  EXPECT_EQ(x.grad().grad_fn(), nullptr);
}

TEST(AutogradEngine, NonScalarBackwardWithExplicitGrad) {
  Tensor x = vec({1, -2, 3}, true);
  Tensor y = mul(x, x);
  y.backward(vec({1, 10, 100}));
  expect_near(x.grad().to_vector(), {2, -40, 600});
}

TEST(AutogradEngine, NonScalarBackwardWithoutGradIsAnError) {
  Tensor x = vec({1, 2, 3}, true);
  Tensor y = mul(x, 2.0);
  try {
    y.backward();
    FAIL() << "expected resin::Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("backward"), std::string::npos) << m;
    EXPECT_NE(m.find("scalar"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
  }
}

TEST(AutogradEngine, BackwardGradMustMatchShape) {
  Tensor x = vec({1, 2, 3}, true);
  Tensor y = mul(x, 2.0);
  try {
    y.backward(vec({1, 2}));
    FAIL() << "expected resin::Error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("[2]"), std::string::npos) << m;
    EXPECT_NE(m.find("[3]"), std::string::npos) << m;
  }
}

TEST(AutogradEngine, BackwardOfTensorWithoutHistoryIsAnError) {
  Tensor x = vec({1, 2});
  EXPECT_THROW(sum(x).backward(), Error);
}

TEST(AutogradEngine, SavedTensorsAreReleasedAfterBackward) {
  Tensor x = vec({0.5, 1.5}, true);
  std::weak_ptr<Storage> saved;
  Tensor loss;
  {
    Tensor h = exp(x);  // ExpBackward saves h; MulBackward saves h twice
    saved = h.impl()->storage();
    loss = sum(mul(h, h));
  }
  EXPECT_FALSE(saved.expired()) << "the graph keeps h alive until backward";
  loss.backward();
  EXPECT_TRUE(saved.expired()) << "backward without retain_graph frees the saved tensors";
  try {
    loss.backward();
    FAIL() << "expected resin::Error on a second backward";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("second time"), std::string::npos) << m;
    EXPECT_NE(m.find("retain_graph"), std::string::npos) << m;
    EXPECT_NE(m.find("Backward"), std::string::npos) << m;
  }
}

TEST(AutogradEngine, RetainGraphAllowsASecondBackward) {
  Tensor x = vec({0.5, 1.5}, true);
  std::weak_ptr<Storage> saved;
  Tensor loss;
  {
    Tensor h = exp(x);
    saved = h.impl()->storage();
    loss = sum(mul(h, h));
  }
  loss.backward({}, /*retain_graph=*/true);
  EXPECT_FALSE(saved.expired());
  loss.backward();
  const std::vector<double> once = {2 * std::exp(1.0), 2 * std::exp(3.0)};
  expect_near(x.grad().to_vector(), {2 * once[0], 2 * once[1]});
  EXPECT_TRUE(saved.expired());
}

TEST(AutogradEngine, LeafGradientsOwnTheirStorage) {
  // Optimisers update .grad in place; two leaves must never share a gradient buffer, and a leaf's
  // gradient must not alias the gradient the caller passed to backward().
  Tensor a = vec({1, 2}, true), b = vec({3, 4}, true);
  add(a, b).backward(vec({1, 1}));
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  EXPECT_NE(a.grad().impl()->storage().get(), b.grad().impl()->storage().get());

  Tensor c = vec({1, 2}, true), d = vec({3, 4, 5}, true);
  Tensor seed = vec({1, 2, 3, 4, 5});
  concat({c, d}, 0).backward(seed);
  EXPECT_NE(c.grad().impl()->storage().get(), seed.impl()->storage().get());
  EXPECT_NE(d.grad().impl()->storage().get(), seed.impl()->storage().get());
  EXPECT_TRUE(c.grad().is_contiguous());
  EXPECT_TRUE(d.grad().is_contiguous());
  expect_near(d.grad().to_vector(), {3, 4, 5});

  Tensor e = vec({1, 2}, true);
  Tensor g = vec({7, 8});
  add(e, 1.0).backward(g);
  EXPECT_NE(e.grad().impl()->storage().get(), g.impl()->storage().get());
}

TEST(AutogradEngine, LeafGradientHasTheLeafsLayout) {
  Tensor w = empty_strided({2, 3, 2, 2}, channels_last_strides({2, 3, 2, 2}), {.dtype = DType::f64});
  backend::ref_backend().fill(w, 1.0);
  w.set_requires_grad(true);
  sum(mul(w.contiguous(), 2.0)).backward();
  EXPECT_TRUE(w.grad().is_channels_last());
  EXPECT_EQ(w.grad().strides(), w.strides());
  for (double v : w.grad().to_vector()) EXPECT_EQ(v, 2.0);
  // linear computes x @ W^T: the gradient reaching W is a transposed view, stored contiguous like W.
  Tensor lw = ones({3, 2}, {.dtype = DType::f64, .requires_grad = true});
  sum(linear(ones({4, 2}, {.dtype = DType::f64}), lw)).backward();
  EXPECT_EQ(lw.grad().strides(), lw.strides());
  for (double v : lw.grad().to_vector()) EXPECT_EQ(v, 4.0);
}

}  // namespace
}  // namespace resin

namespace resin {
namespace {

// A forward that records a graph but never runs backward (evaluation with gradients left on, a
// probe) frees everything once its outputs go: no node may hold its own output (a reference cycle).
TEST(Engine, AGraphWithoutBackwardIsFreedWithItsOutputs) {
  const Tensor x = randn({4, 3, 5, 5}).set_requires_grad(true);
  const Tensor w = ones({3}).set_requires_grad(true), b = zeros({3}).set_requires_grad(true);
  const std::vector<std::pair<const char*, std::function<Tensor()>>> ops = {
      {"batch_norm_relu", [&] { return batch_norm_relu(x, {}, {}, w, b, true, 0.1, 1e-5); }},
      {"batch_norm", [&] { return batch_norm(x, {}, {}, w, b, true, 0.1, 1e-5); }},
      {"relu", [&] { return relu(x); }},
      {"add_relu", [&] { return add_relu(x, x); }},
      {"log_softmax", [&] { return log_softmax(x, 1); }},
      {"softmax", [&] { return softmax(x, 1); }},
  };
  for (const auto& [name, f] : ops) {
    const int64_t before = allocator_stats().current_bytes;
    { const Tensor y = f(); }
    EXPECT_EQ(allocator_stats().current_bytes, before) << name << " left its graph alive";
  }
}

}  // namespace
}  // namespace resin
