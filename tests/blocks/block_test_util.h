// Helpers shared by the block tests.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "resin/nn/module.h"
#include "resin/resin.h"

namespace resin::testing {

// max_i |a_i − b_i|.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto u = a.to_vector(), v = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < u.size() && i < v.size(); ++i) m = std::max(m, std::abs(u[i] - v[i]));
  return m;
}

inline double max_abs(const Tensor& a) {
  double m = 0;
  for (double x : a.to_vector()) m = std::max(m, std::abs(x));
  return m;
}

// max_i |a_i − b_i| / max_i |b_i|: the error relative to the reference's scale.
inline double rel_diff(const Tensor& a, const Tensor& b) {
  const double s = max_abs(b);
  return max_abs_diff(a, b) / (s > 0 ? s : 1.0);
}

// ‖a − b‖₂ / ‖b‖₂: the usual relative error of a vector.
inline double rel_l2(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto u = a.to_vector(), v = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < u.size() && i < v.size(); ++i) num += (u[i] - v[i]) * (u[i] - v[i]), den += v[i] * v[i];
  return std::sqrt(num) / (den > 0 ? std::sqrt(den) : 1.0);
}

// Bit-for-bit equality of values (same shape).
inline bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  return a.to_vector() == b.to_vector();
}

// A fixed, deterministic weighting r (same shape and dtype as y); sum(y * r) is a loss whose
// gradient exercises every output element differently.
inline Tensor weighting(const Tensor& y) {
  std::vector<double> v(static_cast<size_t>(y.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>((i * 7919 + 17) % 2003) / 1001.5 - 1.0;
  return from_vector(v, y.shape(), {.dtype = y.dtype()});
}
inline Tensor weighted_sum(const Tensor& y) { return sum(mul(y, weighting(y))); }

// Replaces every parameter and floating buffer of m (recursively) by a copy in dtype t; blocks look
// their parameters up by name, so the module then computes in t.
inline void convert(nn::Module& m, DType t) {
  auto one = [t](nn::Module& mm) {
    for (auto& [_, p] : mm.own_parameters()) {
      const bool rg = p.requires_grad();
      p = p.detach().to(t);
      p.set_requires_grad(rg);
    }
    for (auto& [_, b] : mm.own_buffers())
      if (b.defined() && is_floating(b.dtype())) b = b.to(t);
  };
  one(m);
  for (auto& [_, c] : m.named_modules()) one(*c);
}

// Gradients of all parameters, by name.
inline std::map<std::string, Tensor> param_grads(const nn::Module& m) {
  std::map<std::string, Tensor> g;
  for (auto& [n, p] : m.named_parameters()) g[n] = p.grad().defined() ? p.grad().clone() : Tensor();
  return g;
}

}  // namespace resin::testing
