// Finite-difference gradient checking, and a registry of gradcheck cases.
//
// gradcheck(f, inputs) projects the outputs of f onto fixed random directions r_k,
//   L(inputs) = sum_k sum(f(inputs)[k] * r_k),
// computes dL/dx for every input that requires grad with autograd::grad, and compares every element
// against the central difference (L(x + eps e_i) - L(x - eps e_i)) / (2 eps). Inputs must be f64
// (so they dispatch to the reference backend), may have any non-overlapping strides (transposed,
// narrowed and channels-last views are perturbed in place through their strides), and f must be
// deterministic (construct a fresh Generator with a fixed seed inside f for random ops).
//
// An element passes when |analytic - numeric| <= atol + rtol * |numeric|. The report names the
// case, the input, the worst element (by multi-index) and both values.
//
// Cases register themselves at static-initialisation time:
//   RESIN_GRADCHECK_CASE(conv2d, stride2_groups3) {
//     Generator g(1);
//     return {{leaf(rnd({1, 6, 7, 7}, g)), leaf(rnd({9, 2, 3, 3}, g))},
//             [](const Inputs& in) { return Outputs{conv2d(in[0], in[1], {}, {.stride = {2}, .groups = 3})};
//             }};
//   }
// `op_name` must be an entry of src/resin/backend/ops.def (a coverage test enforces both directions).
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "resin/resin.h"

namespace resin::testing {

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;
using GradFn = std::function<Outputs(const Inputs&)>;

struct GradcheckOptions {
  double eps = 1e-6;     // central-difference step
  double atol = 1e-7;    // absolute tolerance
  double rtol = 1e-5;    // relative tolerance (to the numeric derivative)
  uint64_t seed = 0x9c;  // seed for the projection directions r_k
};

struct GradcheckResult {
  bool ok = true;
  std::string message;     // empty when ok; otherwise the worst element of the first failing input
  int64_t checked = 0;     // number of elements compared
  double worst_ratio = 0;  // max over elements of |a - n| / (atol + rtol |n|); <= 1 passes
};

GradcheckResult gradcheck(const std::string& label, const GradFn& f, const Inputs& inputs,
                          const GradcheckOptions& opts = {});

// One registered case: inputs (leaves marked requires_grad where a gradient is checked) and f.
struct GradcheckSpec {
  Inputs inputs;
  GradFn fn;
  GradcheckOptions opts = {};
};

struct GradcheckCase {
  std::string op;     // ops.def name
  std::string label;  // case name within the op
  GradcheckSpec (*make)();
  std::string test_name() const { return op + "__" + label; }
};
inline void PrintTo(const GradcheckCase& c, std::ostream* os) { *os << c.test_name(); }

std::vector<GradcheckCase>& gradcheck_registry();
bool register_gradcheck_case(const char* op, const char* label, GradcheckSpec (*make)());

// ---- input helpers (all f64 unless stated)
// Uniform in [lo, hi).
Tensor rnd(const Shape& s, Generator& g, double lo = -1.0, double hi = 1.0);
// Uniform magnitude in [lo, hi) with a random sign: stays at least `lo` away from 0 (relu, abs kinks).
Tensor away_from_zero(const Shape& s, Generator& g, double lo = 0.1, double hi = 1.0);
// Distinct values at least `gap` apart, shuffled (max/min/max_pool without ties).
Tensor distinct(const Shape& s, Generator& g, double gap = 0.05);
// The same values laid out channels-last (NHWC strides) — a 4-D copy, not a view of `t`.
Tensor channels_last(const Tensor& t);
// A non-contiguous copy of `t`: the transpose of a contiguous tensor of the transposed shape, so the
// result has the logical shape of `t` but dims a and b are swapped in memory.
Tensor transposed_layout(const Tensor& t, int64_t a, int64_t b);
// A non-contiguous copy of `t`: a window of a larger tensor (padded by 2 on each side of `dim`).
Tensor narrowed_layout(const Tensor& t, int64_t dim);
// Marks t as a leaf that requires grad and returns it.
inline Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}
inline Tensor f64(const std::vector<double>& v, const Shape& s) {
  return from_vector(v, s, {.dtype = DType::f64});
}
inline Tensor i64(const std::vector<double>& v, const Shape& s) {
  return from_vector(v, s, {.dtype = DType::i64});
}

}  // namespace resin::testing

#define RESIN_GRADCHECK_CASE(op_name, case_label)                                          \
  static ::resin::testing::GradcheckSpec resin_gc_make_##op_name##__##case_label();        \
  [[maybe_unused]] static const bool resin_gc_reg_##op_name##__##case_label =              \
      ::resin::testing::register_gradcheck_case(#op_name, #case_label,                     \
                                                &resin_gc_make_##op_name##__##case_label); \
  static ::resin::testing::GradcheckSpec resin_gc_make_##op_name##__##case_label()
