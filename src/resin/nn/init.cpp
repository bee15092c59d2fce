#include "resin/nn/init.h"

#include <cmath>

#include "resin/backend/backend.h"
#include "resin/core/rng.h"

namespace resin::nn::init {

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  RESIN_CHECK(w.dim() >= 2, "init: fan in/out needs at least 2 dims, got shape ", w.shape());
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

double relu_gain() { return std::sqrt(2.0); }

namespace {
thread_local bool skip_init = false;
}

SkipInitGuard::SkipInitGuard() : prev_(skip_init) { skip_init = true; }
SkipInitGuard::~SkipInitGuard() { skip_init = prev_; }
bool SkipInitGuard::active() { return skip_init; }

namespace {

// w[i] = draw() in logical order, each value computed in double and rounded to w's dtype (as a copy
// from an f64 tensor rounds). Straight into w when it is a contiguous f32/f64 tensor in host memory;
// otherwise through an f64 temporary and the backend's copy.
template <class Draw>
void fill_drawn(Tensor& w, Draw draw) {
  Tensor target = w.detach();
  const bool direct = w.device() == Device::cpu() && w.is_contiguous();
  if (direct && w.dtype() == DType::f32) {
    float* p = target.data<float>();
    for (int64_t i = 0, n = w.numel(); i < n; ++i) p[i] = static_cast<float>(draw());
    return;
  }
  Tensor v = direct && w.dtype() == DType::f64 ? target : empty(w.shape(), {.dtype = DType::f64});
  double* p = v.data<double>();
  for (int64_t i = 0, n = w.numel(); i < n; ++i) p[i] = draw();
  if (!v.is_same(target)) backend::backend_for(w).copy(v, target);
}

}  // namespace

void normal_(Tensor& w, double mean, double std, Generator* g) {
  if (skip_init) return constant_(w, 0.0);
  NormalReader z(g ? *g : default_generator(), w.numel());
  fill_drawn(w, [&] { return mean + std * z.next(); });
}

void uniform_(Tensor& w, double lo, double hi, Generator* g) {
  RESIN_CHECK(lo <= hi, "uniform_: expected lo <= hi, got ", lo, " and ", hi);
  if (skip_init) return constant_(w, 0.0);
  Generator& gen = g ? *g : default_generator();
  // Values in [lo, hi) after rounding to f32 too, as resin::uniform draws them (other dtypes are
  // drawn in f64 and copied, so f64's cap).
  const double top = std::max(lo, largest_below(hi, w.dtype() == DType::f32 ? DType::f32 : DType::f64));
  fill_drawn(w, [&] { return std::min(lo + (hi - lo) * gen.uniform(), top); });
}

void constant_(Tensor& w, double value) { backend::backend_for(w).fill(w.detach(), value); }

void kaiming_normal_(Tensor& w, FanMode mode, double gain, Generator* g) {
  auto [fin, fout] = fans(w);
  normal_(w, 0.0, gain / std::sqrt(static_cast<double>(mode == FanMode::fan_in ? fin : fout)), g);
}

void kaiming_uniform_(Tensor& w, double a, FanMode mode, Generator* g) {
  auto [fin, fout] = fans(w);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(mode == FanMode::fan_in ? fin : fout));
  uniform_(w, -bound, bound, g);
}

void xavier_uniform_(Tensor& w, double gain, Generator* g) {
  auto [fin, fout] = fans(w);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fin + fout));
  uniform_(w, -bound, bound, g);
}

void xavier_normal_(Tensor& w, double gain, Generator* g) {
  auto [fin, fout] = fans(w);
  normal_(w, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fin + fout)), g);
}

}  // namespace resin::nn::init
