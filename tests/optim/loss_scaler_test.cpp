// LossScaler: scaling, unscaling, overflow back-off, growth, state round trip and validation. The
// expected values follow torch.amp.GradScaler's documented algorithm (Debian's torch 1.13 has no CPU
// GradScaler to run as an oracle).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>

#include "../support/error_of.h"
#include "resin/resin.h"

namespace resin::optim {
namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;
using resin::testing::error_of;

// Two parameters of a tiny model whose loss is sum(w * x) + sum(b): dL/dw = x, dL/db = 1.
struct Tiny {
  Tensor w = from_vector({0.5, -1.0, 2.0}, {3}, {.requires_grad = true});
  Tensor b = from_vector({0.25}, {1}, {.requires_grad = true});
  Tensor x = from_vector({1e-3, -3.0, 7.5}, {3});
  Named named() const { return {{"w", w}, {"b", b}}; }
  Tensor loss() const { return add(sum(mul(w, x)), sum(b)); }
  void zero() {
    w.zero_grad();
    b.zero_grad();
  }
};

TEST(LossScaler, ScalesTheLossAndUnscalesTheGradientsExactly) {
  Tiny m;
  LossScaler s;
  EXPECT_EQ(s.scale_value(), 65536.0);
  const Tensor scaled = s.scale(m.loss());
  EXPECT_EQ(scaled.item(), m.loss().item() * 65536.0);
  scaled.backward();
  EXPECT_EQ(m.w.grad().to_vector(),
            (std::vector<double>{65536 * static_cast<double>(1e-3f), -3 * 65536.0, 7.5 * 65536.0}));
  const Tensor scaled_grad = m.w.grad();
  EXPECT_TRUE(s.unscale(m.named()));
  // Powers of two: the unscaled gradients are the plain ones, bit for bit; the old tensor is not written.
  EXPECT_EQ(m.w.grad().to_vector(), m.x.to_vector());
  EXPECT_EQ(m.b.grad().to_vector(), (std::vector<double>{1.0}));
  EXPECT_EQ(scaled_grad.to_vector()[1], -3 * 65536.0);
  s.update();
  EXPECT_EQ(s.scale_value(), 65536.0);
  EXPECT_EQ(s.growth_tracker(), 1);
  EXPECT_EQ(s.overflow_steps(), 0);
}

TEST(LossScaler, OverflowLeavesTheGradientsAndBacksOff) {
  Tiny m;
  LossScaler s({.init_scale = 1024, .growth_interval = 3});
  for (int i = 0; i < 2; ++i) {  // two good steps: the tracker counts
    s.scale(m.loss()).backward();
    EXPECT_TRUE(s.unscale(m.named()));
    s.update();
    m.zero();
  }
  EXPECT_EQ(s.growth_tracker(), 2);
  s.scale(m.loss()).backward();
  m.b.grad().data<float>()[0] = std::numeric_limits<float>::infinity();
  const std::vector<double> before = m.w.grad().to_vector();
  EXPECT_FALSE(s.unscale(m.named()));
  EXPECT_EQ(m.w.grad().to_vector(), before) << "gradients of a skipped step stay as they were";
  s.update();
  EXPECT_EQ(s.scale_value(), 512.0);
  EXPECT_EQ(s.growth_tracker(), 0) << "an overflow restarts the count";
  EXPECT_EQ(s.overflow_steps(), 1);
  m.zero();
  s.scale(m.loss()).backward();
  m.w.grad().data<float>()[2] = std::numeric_limits<float>::quiet_NaN();  // NaN counts as overflow too
  EXPECT_FALSE(s.unscale(m.named()));
  s.update();
  EXPECT_EQ(s.scale_value(), 256.0);
  EXPECT_EQ(s.overflow_steps(), 2);
}

TEST(LossScaler, GrowsAfterGrowthIntervalFiniteStepsInARow) {
  LossScaler s({.init_scale = 8, .growth_interval = 3});
  for (int i = 0; i < 2; ++i) s.update();  // steps without unscale() count as finite
  EXPECT_EQ(s.scale_value(), 8.0);
  s.update();
  EXPECT_EQ(s.scale_value(), 16.0);
  EXPECT_EQ(s.growth_tracker(), 0);
  for (int i = 0; i < 3; ++i) s.update();
  EXPECT_EQ(s.scale_value(), 32.0);
  // Backing off stops at f32's smallest normal value.
  LossScaler low({.init_scale = 4 * static_cast<double>(FLT_MIN)});
  Tiny m;
  for (int i = 0; i < 4; ++i) {
    m.zero();
    low.scale(m.loss()).backward();
    m.b.grad().data<float>()[0] = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(low.unscale(m.named()));
    low.update();
  }
  EXPECT_EQ(low.scale_value(), static_cast<double>(FLT_MIN));
  EXPECT_EQ(low.overflow_steps(), 4);
  // Near f32's largest value the scale stops growing (a larger one would be inf in f32).
  LossScaler top({.init_scale = 0x1p127, .growth_interval = 1});
  top.update();
  EXPECT_EQ(top.scale_value(), 0x1p127);
}

TEST(LossScaler, AStaticScaleNeverChanges) {
  Tiny m;
  LossScaler s({.init_scale = 128, .growth_interval = 1, .dynamic = false});
  s.scale(m.loss()).backward();
  m.w.grad().data<float>()[0] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(s.unscale(m.named())) << "a static scaler still reports non-finite gradients";
  s.update();
  s.update();
  EXPECT_EQ(s.scale_value(), 128.0);
  EXPECT_EQ(s.overflow_steps(), 0);
  EXPECT_FALSE(s.dynamic());
}

TEST(LossScaler, StateRoundTripsAndBadStateIsRefused) {
  LossScaler a({.init_scale = 4096, .growth_interval = 5});
  a.update();
  a.update();
  Tiny m;
  a.scale(m.loss()).backward();
  m.w.grad().data<float>()[0] = std::numeric_limits<float>::infinity();
  a.unscale(m.named());
  a.update();  // 2048, tracker 0, 1 overflow
  a.update();  // tracker 1
  LossScaler b({.growth_interval = 5});
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(b.scale_value(), 2048.0);
  EXPECT_EQ(b.growth_tracker(), 1);
  EXPECT_EQ(b.overflow_steps(), 1);

  auto with = [&](const std::string& key, const Tensor& v) {
    auto st = a.state_dict();
    if (v.defined())
      st[key] = v;
    else
      st.erase(key);
    return st;
  };
  const std::vector<std::pair<std::map<std::string, Tensor>, std::string>> bad = {
      {with("scale", Tensor()), "missing key scale"},
      {with("growth_tracker", Tensor()), "missing key growth_tracker"},
      {with("scale", scalar_f64(-1)), "positive number"},
      {with("scale", scalar_f64(std::numeric_limits<double>::infinity())), "positive number"},
      {with("scale", from_vector({1.0, 2.0}, {2})), "must be a scalar"},
      {with("growth_tracker", scalar_f64(2.5)), "whole number"},
      {with("growth_tracker", scalar_i64(5)), "not below growth_interval 5"},
      {with("overflow_steps", scalar_i64(-1)), "whole number"},
      {with("bogus", scalar_i64(1)), "unexpected key bogus"},
  };
  for (const auto& [bad_state, want] : bad) {
    LossScaler c({.growth_interval = 5});
    const auto& state = bad_state;  // a lambda may not capture a structured binding in clang 14
    const std::string e = error_of([&] { c.load_state_dict(state); });
    EXPECT_NE(e.find(want), std::string::npos) << "wanted '" << want << "', got: " << e;
    EXPECT_EQ(c.scale_value(), 65536.0) << "a refused state changes nothing";
  }
}

TEST(LossScaler, BadOptionsAreRefused) {
  const std::vector<std::pair<LossScalerOptions, std::string>> bad = {
      {{.init_scale = 0}, "initial scale"},
      {{.init_scale = std::numeric_limits<double>::quiet_NaN()}, "initial scale"},
      {{.init_scale = 1e39}, "initial scale"},
      {{.init_scale = 1e-39}, "initial scale"},  // f32-subnormal: 1/S would overflow f32
      {{.growth_factor = 1.0}, "growth_factor"},
      {{.backoff_factor = 1.0}, "backoff_factor"},
      {{.backoff_factor = 0.0}, "backoff_factor"},
      {{.growth_interval = 0}, "growth_interval"},
  };
  for (const auto& [options, want] : bad) {
    const auto& o = options;  // as above
    const std::string e = error_of([&] { LossScaler s(o); });
    EXPECT_NE(e.find(want), std::string::npos) << "wanted '" << want << "', got: " << e;
  }
}

}  // namespace
}  // namespace resin::optim
