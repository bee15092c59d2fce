// Training batch-norm kernels of the CPU backend for dense f32 NCHW and channels-last activations
// (see batch_norm_kernels.cpp for why they are not oneDNN's), with the ReLU after them fused, and
// the fused residual add + ReLU. Same contracts as Backend::batch_norm_forward_training /
// batch_norm_backward / add_relu; each returns false, touching nothing, when the operands are not
// in a layout it handles.
#pragma once
#include "resin/tensor/tensor.h"

namespace resin::backend::kernels {

// relu: y = max(0, batch norm of x).
bool batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                         const Tensor& mean, const Tensor& var, double eps, bool relu = false);
// relu_y defined: the backward of relu(batch norm) with that output, i.e. gy counts where relu_y > 0.
bool batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                         const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                         double eps, const Tensor& relu_y = {});
// y = max(0, a + b) for f32 tensors of one shape and one dense layout.
bool add_relu(const Tensor& a, const Tensor& b, const Tensor& y);

}  // namespace resin::backend::kernels
