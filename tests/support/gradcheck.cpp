#include "gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "resin/backend/backend.h"

namespace resin::testing {
namespace {

// Storage offsets (in elements, relative to t's first element) of every element in logical order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs(static_cast<size_t>(t.numel()), 0);
  const Shape& s = t.shape();
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      off += (rem % s[d]) * t.stride(d);
      rem /= s[d];
    }
    offs[static_cast<size_t>(i)] = off;
  }
  return offs;
}

std::string multi_index(const Shape& s, int64_t flat) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = flat % s[d];
    flat /= s[d];
  }
  return Shape(idx).str();
}

// The scalar projection sum_k sum(out_k * r_k) as a 0-d tensor (keeps history when grad mode is on).
Tensor project(const Outputs& outs, const std::vector<Tensor>& dirs) {
  Tensor total;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor term = sum(mul(outs[k], dirs[k]));
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

}  // namespace

GradcheckResult gradcheck(const std::string& label, const GradFn& f, const Inputs& inputs,
                          const GradcheckOptions& opts) {
  GradcheckResult res;
  auto fail = [&](const std::string& why) {
    res.ok = false;
    res.message = label + ": " + why;
    return res;
  };
  std::vector<size_t> diff;  // indices of inputs that require grad
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    if (inputs[i].dtype() != DType::f64)
      return fail(str_cat("input ", i, " has dtype ", inputs[i].dtype(), ", expected f64"));
    if (!inputs[i].is_leaf()) return fail(str_cat("input ", i, " is not a leaf"));
    auto offs = element_offsets(inputs[i]);
    std::sort(offs.begin(), offs.end());
    if (std::adjacent_find(offs.begin(), offs.end()) != offs.end())
      return fail(str_cat("input ", i, " has overlapping memory (strides ", inputs[i].strides(), ")"));
    diff.push_back(i);
  }
  if (diff.empty()) return fail("no input requires grad");

  // Analytic: one forward with history, then autograd::grad of the projection.
  Outputs outs = f(inputs);
  if (outs.empty()) return fail("f returned no outputs");
  Generator gen(opts.seed);
  std::vector<Tensor> dirs;
  for (size_t k = 0; k < outs.size(); ++k) {
    if (outs[k].dtype() != DType::f64)
      return fail(str_cat("output ", k, " has dtype ", outs[k].dtype(), ", expected f64"));
    dirs.push_back(randn(outs[k].shape(), {.dtype = DType::f64}, &gen));
  }
  Tensor loss = project(outs, dirs);
  if (!loss.requires_grad()) return fail("the output does not depend on any input that requires grad");
  Inputs wrt;
  for (size_t i : diff) wrt.push_back(inputs[i]);
  const Inputs analytic = autograd::grad({loss}, wrt, {ones(Shape{}, {.dtype = DType::f64})});
  const double l0 = loss.item();

  NoGradGuard no_grad;
  {
    // Two evaluations without history must agree bit for bit; the recorded one may round differently
    // (eval-mode batch_norm takes a composite path when it records history), but only by rounding.
    const double a = project(f(inputs), dirs).item(), b = project(f(inputs), dirs).item();
    if (a != b || !(std::abs(a - l0) <= 1e-12 * (1 + std::abs(l0))))
      return fail(
          str_cat("f is not deterministic: the projection was ", l0, " with history, then ", a, " and ", b));
  }
  for (size_t j = 0; j < diff.size(); ++j) {
    const Tensor& x = inputs[diff[j]];
    const Tensor& ga = analytic[j];
    if (!ga.defined() || ga.shape() != x.shape() || ga.dtype() != DType::f64)
      return fail(str_cat("gradient of input ", diff[j], " has shape ",
                          ga.defined() ? ga.shape().str() : "undefined", ", expected ", x.shape(), " f64"));
    const std::vector<double> a = ga.to_vector();
    const std::vector<int64_t> offs = element_offsets(x);
    double* base = x.data<double>();
    double worst = -1;
    int64_t worst_i = -1;
    double worst_n = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      double& v = base[offs[static_cast<size_t>(i)]];
      const double orig = v;
      v = orig + opts.eps;
      const double lp = project(f(inputs), dirs).item();
      v = orig - opts.eps;
      const double lm = project(f(inputs), dirs).item();
      v = orig;
      const double numeric = (lp - lm) / (2 * opts.eps);
      const double err = std::abs(a[static_cast<size_t>(i)] - numeric);
      const double ratio = err / (opts.atol + opts.rtol * std::abs(numeric));
      if (!(ratio <= worst)) {  // also catches NaN
        worst = std::isnan(ratio) ? INFINITY : ratio;
        worst_i = i;
        worst_n = numeric;
      }
      ++res.checked;
    }
    res.worst_ratio = std::max(res.worst_ratio, worst);
    if (worst > 1.0 && res.ok) {
      std::ostringstream os;
      os.precision(10);
      os << "gradient mismatch for input " << diff[j] << " (shape " << x.shape() << ", strides "
         << x.strides() << ") at element " << multi_index(x.shape(), worst_i) << ": analytic "
         << a[static_cast<size_t>(worst_i)] << ", numeric " << worst_n << ", |diff| "
         << std::abs(a[static_cast<size_t>(worst_i)] - worst_n) << " > atol " << opts.atol << " + rtol "
         << opts.rtol << " * |numeric|";
      fail(os.str());
    }
  }
  return res;
}

std::vector<GradcheckCase>& gradcheck_registry() {
  static std::vector<GradcheckCase> cases;
  return cases;
}

bool register_gradcheck_case(const char* op, const char* label, GradcheckSpec (*make)()) {
  gradcheck_registry().push_back({op, label, make});
  return true;
}

Tensor rnd(const Shape& s, Generator& g, double lo, double hi) {
  return uniform(s, lo, hi, {.dtype = DType::f64}, &g);
}

Tensor away_from_zero(const Shape& s, Generator& g, double lo, double hi) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (double& x : v) {
    const double mag = lo + (hi - lo) * g.uniform();
    x = g.uniform() < 0.5 ? -mag : mag;
  }
  return f64(v, s);
}

Tensor distinct(const Shape& s, Generator& g, double gap) {
  const int64_t n = s.numel();
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = (static_cast<double>(i) - static_cast<double>(n) / 2) * gap;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(v[static_cast<size_t>(i)], v[g.below(static_cast<uint64_t>(i + 1))]);
  return f64(v, s);
}

Tensor channels_last(const Tensor& t) {
  Tensor out = empty_strided(t.shape(), channels_last_strides(t.shape()), {.dtype = t.dtype()});
  backend::ref_backend().copy(t.detach(), out);
  return out;
}

Tensor transposed_layout(const Tensor& t, int64_t a, int64_t b) {
  return t.detach().transpose(a, b).contiguous().transpose(a, b);
}

Tensor narrowed_layout(const Tensor& t, int64_t dim) {
  Shape big = t.shape();
  dim = dim < 0 ? dim + t.dim() : dim;
  big[static_cast<size_t>(dim)] += 4;
  Tensor base = full(big, 1e9, {.dtype = t.dtype()});  // poison outside the window
  Tensor view = base.narrow(dim, 2, t.size(dim));
  backend::ref_backend().copy(t.detach(), view);
  return view;
}

}  // namespace resin::testing
