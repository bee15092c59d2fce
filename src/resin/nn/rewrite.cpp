#include "resin/nn/rewrite.h"

#include <cmath>

namespace resin::nn {

void fold_batch_norm(std::vector<double>& w, std::vector<double>& b, const std::vector<double>& gamma,
                     const std::vector<double>& beta, const std::vector<double>& mean,
                     const std::vector<double>& var, double eps) {
  const size_t c = gamma.size();
  RESIN_CHECK(c > 0 && b.size() == c && beta.size() == c && mean.size() == c && var.size() == c && w.size() % c == 0,
              "fold_batch_norm: ", c, " channels, but ", w.size(), " weights, ", b.size(), " biases, ", beta.size(),
              " betas, ", mean.size(), " means and ", var.size(), " variances");
  const size_t per = w.size() / c;
  for (size_t o = 0; o < c; ++o) {
    // In double, as ONNX Runtime's own fusion does in float: the folded layer differs from
    // layer-then-BN only by rounding.
    const double scale = gamma[o] / std::sqrt(var[o] + eps);
    for (size_t j = 0; j < per; ++j) w[o * per + j] *= scale;
    b[o] = (b[o] - mean[o]) * scale + beta[o];
  }
}

double relative_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  const auto va = a.to_vector(), vb = b.to_vector();
  double d = 0, m = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double e = std::abs(va[i] - vb[i]);
    if (!std::isfinite(e)) return INFINITY;  // std::max would skip a NaN
    d = std::max(d, e);
    m = std::max(m, std::abs(vb[i]));
  }
  return d / std::max(m, 1e-30);
}

}  // namespace resin::nn
