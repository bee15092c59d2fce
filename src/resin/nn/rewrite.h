// Helpers of the rewrites that turn a trained model into an equivalent inference form
// (models::fuse_for_inference, the BatchNorm folding of ONNX export), and of the checks that
// compare a rewritten model's output with the original's (export's self-check, the tests).
#pragma once
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::nn {

// Folds an inference BatchNorm (γ, β, running μ and σ², ε) into the preceding layer's weight w
// (w.size() / γ.size() values per output channel, channel-major) and bias b (one per channel),
// in double: with s = γ[o] / √(σ²[o] + ε),
//   w'[o] = w[o] · s,   b'[o] = (b[o] − μ[o]) · s + β[o].
// Throws resin::Error when the sizes disagree.
void fold_batch_norm(std::vector<double>& w, std::vector<double>& b, const std::vector<double>& gamma,
                     const std::vector<double>& beta, const std::vector<double>& mean,
                     const std::vector<double>& var, double eps);

// max |a − b| / max |b| over all elements (max |b| floored at 1e-30): one scale for the whole
// output, so near-zero elements do not dominate. +inf when the shapes differ or any difference is
// NaN or infinite, so a NaN output never passes a tolerance.
double relative_error(const Tensor& a, const Tensor& b);

}  // namespace resin::nn
