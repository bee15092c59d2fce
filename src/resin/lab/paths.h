// Path analysis of the unravelled network (Veit, Wilber, Belongie 2016). A residual block offers two
// routes (its skip and its branch), a plain block one (its body), so a stack of n residual blocks
// unravels into 2^n paths; a path's length is the number of branches it passes through.
#pragma once
#include <functional>
#include <vector>

#include "resin/lab/stack.h"

namespace resin::lab {

// counts[k] = number of paths through exactly k weighted bodies (k = 0..n), from the stack's real
// structure: residual block → (skip: +0, branch: +1), plain block → (+1), a block deleted in
// `modes` → (+0). Exact in double while every count is below 2^53 (n ≤ 56 residual blocks); throws
// beyond that.
std::vector<double> path_length_counts(const BlockStack& s, const std::vector<BlockMode>& modes = {});
// C(n, k)/2^n for k = 0..n (the path-length distribution of n residual blocks).
std::vector<double> binomial_path_distribution(int64_t n);
// Σ_{k=lo..hi} p[k] (indices clamped to p's range).
double mass(const std::vector<double>& p, int64_t lo, int64_t hi);

// Veit et al.'s gradient-by-path-length estimate. For each k, `samples` times: choose k of the
// residual blocks uniformly, let the backward pass go through the branch of exactly those and
// through the skip of every other residual block (apply_block's branch_path/skip_path), and record
// ‖∂loss/∂x_0‖ at the stem output x_0. Plain blocks are always passed through (their bodies count
// towards every path's length but are not sampled). The forward value is the full network's in
// every sample. loss maps the stack's output to a scalar.
struct PathGradient {
  std::vector<int64_t> k;
  std::vector<double> mean_norm, std_norm;  // over the samples, per k
  int64_t samples = 0, residual_blocks = 0;
  // total[k] = C(n, k) · mean_norm[k]: the gradient magnitude carried by all paths of length k.
  std::vector<double> total() const;
};
PathGradient path_gradient_by_length(const BlockStack& s, const Tensor& input,
                                     const std::function<Tensor(const Tensor&)>& loss,
                                     const std::vector<int64_t>& ks, int64_t samples, Generator& g);

// Least-squares line y = a + b·x: {a, b, R²}.
struct LineFit {
  double intercept = 0, slope = 0, r2 = 0;
};
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace resin::lab
