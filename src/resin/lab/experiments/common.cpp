#include "resin/lab/experiments/common.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "resin/data/idx.h"
#include "resin/ops/ops.h"

namespace resin::lab {

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

double median_of(std::vector<double> v) {
  // NaN has no rank (and would break the sort's ordering).
  if (std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); })) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double nan_max(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

double max_abs_of(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = nan_max(m, std::abs(v));
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  RESIN_CHECK(a.shape() == b.shape(), "max_abs_diff: shapes ", a.shape(), " and ", b.shape(), " differ");
  const auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = nan_max(m, std::abs(x[i] - y[i]));
  return m;
}

double max_rel_error(const Tensor& a, const Tensor& b) { return max_abs_diff(a, b) / max_abs_of(b); }

namespace {
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t t = i; t <= j; ++t) r[idx[t]] = (static_cast<double>(i + j) / 2.0) + 1.0;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  RESIN_CHECK(a.size() == b.size() && a.size() >= 2, "spearman: need two equal-length samples of >= 2");
  const auto ra = ranks(a), rb = ranks(b);
  const double ma = mean_of(ra), mb = mean_of(rb);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : std::nan("");
}

std::vector<uint64_t> seed_list(const Context& ctx, Results& r) {
  std::vector<uint64_t> s;
  for (int64_t i = 0; i < ctx.seeds; ++i) s.push_back(ctx.seed(i));
  r.seeds(s);
  return s;
}

LabData load_fashion(const Context& ctx, bool train, int64_t n) {
  auto ds = ctx.fashion_mnist.empty() ? data::load_fashion_mnist(data::kFashionMnistRoot, train)
                                      : data::load_fashion_mnist(ctx.fashion_mnist, train);
  Tensor img = ds->images(), lab = ds->labels();
  if (n > 0 && n < img.size(0)) img = img.narrow(0, 0, n), lab = lab.narrow(0, 0, n);
  Tensor x = (img.to(DType::f32) * (1.0 / 255.0) - data::kFashionMnistMean) * (1.0 / data::kFashionMnistStd);
  return {x.contiguous(), lab.contiguous()};
}

std::string in_range_text(const std::string& what, double v, double lo, double hi) {
  return str_cat(what, " = ", fmt(v), (v >= lo && v <= hi) ? " ∈ [" : " ∉ [", fmt(lo), ", ", fmt(hi), "]");
}

}  // namespace resin::lab
