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

static void assign(Tensor& w, const Tensor& v) { backend::backend_for(w).copy(v, w.detach()); }

void normal_(Tensor& w, double mean, double std, Generator* g) {
  Tensor v = randn(w.shape(), {.dtype = DType::f64}, g);
  const auto n = v.numel();
  double* p = v.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = mean + std * p[i];
  assign(w, v);
}

void uniform_(Tensor& w, double lo, double hi, Generator* g) { assign(w, uniform(w.shape(), lo, hi, {.dtype = DType::f64}, g)); }

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
