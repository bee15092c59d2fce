#include "resin/lab/paths.h"

#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/lab/analysis.h"

namespace resin::lab {

std::vector<double> path_length_counts(const BlockStack& s, const std::vector<BlockMode>& modes) {
  RESIN_CHECK(modes.empty() || modes.size() == s.size(), "path_length_counts: ", modes.size(), " modes for ",
              s.size(), " blocks");
  // counts is the polynomial Π_blocks (routes of the block) in z, z marking one body passed.
  std::vector<double> counts = {1.0};
  for (size_t i = 0; i < s.size(); ++i) {
    if (!modes.empty() && modes[i] == BlockMode::deleted) continue;  // one route, length +0
    const bool residual = is_residual_block(*s.blocks[i].second);
    std::vector<double> next(counts.size() + 1, 0.0);
    for (size_t k = 0; k < counts.size(); ++k) {
      if (residual) next[k] += counts[k];  // skip
      next[k + 1] += counts[k];            // body
    }
    counts = std::move(next);
    for (double c : counts)
      RESIN_CHECK(c < 9007199254740992.0, "path_length_counts: more than 2^53 paths of one length (",
                  s.size(), " blocks); counts would be inexact");
  }
  return counts;
}

std::vector<double> binomial_path_distribution(int64_t n) {
  RESIN_CHECK(n >= 0 && n <= 1000, "binomial_path_distribution: n must be in [0, 1000], got ", n);
  std::vector<double> p(static_cast<size_t>(n + 1));
  for (int64_t k = 0; k <= n; ++k)  // log-space: C(1000, 500)/2^1000 underflows nothing, overflows nothing
    p[static_cast<size_t>(k)] = std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) -
                                         std::lgamma(n - k + 1.0) - static_cast<double>(n) * std::log(2.0));
  return p;
}

double mass(const std::vector<double>& p, int64_t lo, int64_t hi) {
  double m = 0;
  for (int64_t k = std::max<int64_t>(lo, 0); k <= hi && k < static_cast<int64_t>(p.size()); ++k)
    m += p[static_cast<size_t>(k)];
  return m;
}

std::vector<double> PathGradient::total() const {
  std::vector<double> t(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    const double logc = std::lgamma(residual_blocks + 1.0) - std::lgamma(k[i] + 1.0) -
                        std::lgamma(static_cast<double>(residual_blocks - k[i]) + 1.0);
    t[i] = std::exp(logc) * mean_norm[i];
  }
  return t;
}

PathGradient path_gradient_by_length(const BlockStack& s, const Tensor& input,
                                     const std::function<Tensor(const Tensor&)>& loss,
                                     const std::vector<int64_t>& ks, int64_t samples, Generator& g) {
  RESIN_CHECK(samples >= 1, "path_gradient_by_length: samples must be >= 1, got ", samples);
  const std::vector<size_t> res = residual_blocks(s);
  PathGradient out;
  out.samples = samples;
  out.residual_blocks = static_cast<int64_t>(res.size());
  Tensor x0;
  {
    NoGradGuard ng;
    x0 = run_stem(s, input);
  }
  for (int64_t k : ks) {
    RESIN_CHECK(k >= 0 && k <= out.residual_blocks, "path_gradient_by_length: k = ", k, " outside [0, ",
                out.residual_blocks, "]");
    double sum = 0, sq = 0;
    for (int64_t t = 0; t < samples; ++t) {
      std::vector<BlockMode> modes(s.size(), BlockMode::full);
      for (size_t i : res) modes[i] = BlockMode::skip_path;
      for (size_t i : sample_without_replacement(res, static_cast<size_t>(k), g))
        modes[i] = BlockMode::branch_path;
      Tensor x = x0.detach();
      x.set_requires_grad(true);
      Tensor l = loss(run_from_stem(s, x, {.modes = modes}));
      RESIN_CHECK(l.numel() == 1, "path_gradient_by_length: loss must be a scalar, got shape ", l.shape());
      const double n = frobenius_norm(autograd::grad({l}, {x}, {ones_like(l)})[0]);
      sum += n;
      sq += n * n;
    }
    const double m = sum / static_cast<double>(samples);
    out.k.push_back(k);
    out.mean_norm.push_back(m);
    out.std_norm.push_back(std::sqrt(std::max(0.0, sq / static_cast<double>(samples) - m * m)));
  }
  return out;
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  RESIN_CHECK(x.size() == y.size() && x.size() >= 2, "fit_line: need >= 2 paired points, got ", x.size(),
              " and ", y.size());
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= n, my /= n;
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  RESIN_CHECK(sxx > 0, "fit_line: all x values are equal");
  LineFit f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  f.r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1.0;
  return f;
}

}  // namespace resin::lab
