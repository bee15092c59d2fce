// The CPU backend's own kernels, for the cases where oneDNN 2.6 is slow or falls back to its
// reference code (native_kernels.cpp says why for each): training batch norm for dense f32 NCHW and
// channels-last activations (optionally with the ReLU after it fused), the fused residual add +
// ReLU, a dense tensor with a scalar, and sums over leading dims. Same contracts as the Backend
// methods they serve; each returns false, touching nothing, when the operands are not in a layout
// it handles.
#pragma once
#include "resin/backend/backend.h"

namespace resin::backend::kernels {

// relu: y = max(0, batch norm of x).
bool batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                         const Tensor& mean, const Tensor& var, double eps, bool relu = false);
// Inference batch norm (running statistics) of a packed x into y (packed): the eval pass of the
// packed training layouts. Returns false for strided x (oneDNN's kernel is fine there).
bool batch_norm_inference_packed(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                 const Tensor& var, const Tensor& y, double eps);
// relu_y defined: the backward of relu(batch norm) with that output: gy counts unless relu_y ≤ 0.
bool batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                         const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                         double eps, const Tensor& relu_y = {});
// y = max(0, a + b) for f32 tensors of one shape and one dense layout. Every ReLU here keeps NaN.
bool add_relu(const Tensor& a, const Tensor& b, const Tensor& y);
// gx = g1 + g2 (g2 may be undefined) unless y ≤ 0, where it is 0 (PyTorch's threshold_backward), for f32
// tensors of one shape and one dense layout: ReLU's backward (y its input or output), and add_relu's with
// the engine's gradient sum fused in.
bool relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx);
// y = max(0, x), NaN kept (PyTorch's rule; oneDNN 2.6's eltwise ReLU turns NaN into 0), for f32
// tensors of one shape and one dense layout.
bool relu(const Tensor& x, const Tensor& y);
// out = a op s for a and out of one dense layout (any permutation) and b a scalar expanded to
// a's shape; add, sub, mul, div.
bool binary_scalar(Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
// out = a op b, add, sub or mul, when a or b is packed (tensor/packing.h) and both have out's shape:
// a gradient sum the engine did not fuse, in the packed layout. Returns false otherwise (oneDNN's
// binary serves strided operands).
bool binary_packed(Binary op, const Tensor& a, const Tensor& b, const Tensor& out);
// Sum or mean of a contiguous x over its leading dims: out keeps x's trailing dims (bias gradients).
bool reduce_leading(Reduce op, const Tensor& x, const Tensor& out);

}  // namespace resin::backend::kernels
