// Gradient norms and clipping, with torch.nn.utils.clip_grad_norm_ semantics.
//
// The total norm treats all defined gradients as one vector: for a finite order p it is
// (sum_i ||g_i||_p^p)^(1/p), computed as the p-norm of the per-gradient p-norms; for p = inf it
// is max_i max|g_i|. Parameters without a gradient are skipped; with none the norm is 0. Each
// per-gradient norm and the total are rounded to the gradients' dtype (f64 if any gradient is f64)
// as torch's are; sums are accumulated in double in a fixed order (deterministic for any thread
// count), so results agree with torch to rounding, not bit for bit.
//
// Clipping: coef = max_norm / (total + 1e-6), clamped to at most 1 (computed in the gradients'
// dtype); when coef < 1 (or NaN) each gradient is REPLACED by a scaled copy via p.set_grad(): the
// old gradient tensor is never written, since it may be shared. A NaN/inf total therefore turns
// the gradients into NaN/zeros, as in torch, unless error_if_nonfinite asks for an error instead.
#pragma once
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::optim {

constexpr double kInfNorm = std::numeric_limits<double>::infinity();

// Total gradient norm of order norm_type (> 0, or kInfNorm); nothing is modified.
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

// Clips gradients in place (by replacement) and returns the total norm before clipping.
// error_if_nonfinite: throw resin::Error (gradients untouched) when the total norm is NaN or inf.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);
// The same; the error for a non-finite norm names the parameters whose gradients hold NaN/inf.
double clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named, double max_norm,
                      double norm_type = 2.0, bool error_if_nonfinite = false);

// Replaces every defined gradient g by g·coef (coef rounded to g's dtype, one product per element),
// a new tensor: the old one is never written, since it may be shared.
void scale_grads(const std::vector<Tensor>& params, double coef);

// Names of the parameters whose gradient holds a NaN or an infinity (empty when all are finite).
std::vector<std::string> nonfinite_grads(const std::vector<std::pair<std::string, Tensor>>& named);
// True when every defined gradient is finite.
bool grads_finite(const std::vector<Tensor>& params);

}  // namespace resin::optim
