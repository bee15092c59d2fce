// Helpers shared by the experiment files: summary statistics, seeds, Fashion-MNIST tensors.
#pragma once
#include <string>
#include <vector>

#include "resin/lab/experiment.h"
#include "resin/tensor/tensor.h"

namespace resin::lab {

double mean_of(const std::vector<double>& v);
double std_of(const std::vector<double>& v);  // sample standard deviation (n − 1); 0 for n < 2
// The middle value (mean of the two middle ones for an even count); NaN when empty or any is NaN.
double median_of(std::vector<double> v);

// Maxima for exact checks, NaN-propagating: std::max(m, NaN) returns m, so an accumulation with it
// lets an all-NaN result pass "≤ tolerance". Each returns NaN as soon as one input is NaN.
double nan_max(double a, double b);
// max_i |t_i| in double (0 for an empty tensor).
double max_abs_of(const Tensor& t);
// max_i |a_i − b_i|, the difference taken in double. Throws unless the shapes are equal.
double max_abs_diff(const Tensor& a, const Tensor& b);
// max_i |a_i − b_i| / max_i |b_i|: an error relative to the reference b's scale (inf or NaN for b = 0).
double max_rel_error(const Tensor& a, const Tensor& b);
// Spearman's rank correlation (average ranks for ties).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// The run's seeds: ctx.seed(0..ctx.seeds−1), also recorded in the results.
std::vector<uint64_t> seed_list(const Context& ctx, Results& r);

// Fashion-MNIST as tensors: x f32 [N, 1, 28, 28] normalised (x/255 − 0.2860)/0.3530, y i64 [N];
// the first n examples of the split (n = 0: all). Throws (with the install hint) when missing.
struct LabData {
  Tensor x, y;
};
LabData load_fashion(const Context& ctx, bool train, int64_t n = 0);

// "1.234 ∈ [0.8, 1.25]"-style phrases for the measured column.
std::string in_range_text(const std::string& what, double v, double lo, double hi);

}  // namespace resin::lab
