// Training batch-norm kernels of the CPU backend for dense f32 NCHW and channels-last activations
// (see batch_norm_kernels.cpp for why they are not oneDNN's). Same contracts as
// Backend::batch_norm_forward_training / batch_norm_backward; each returns false, touching nothing,
// when the operands are not in a layout it handles.
#pragma once
#include "resin/tensor/tensor.h"

namespace resin::backend::kernels {

bool batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                         const Tensor& mean, const Tensor& var, double eps);
bool batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                         const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                         double eps);

}  // namespace resin::backend::kernels
