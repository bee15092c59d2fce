// ONNX forms of the common ops, shared by the export_onnx overrides of layers, blocks and models
// (nn/onnx_emit.h). Each emits nodes valid for opsets 13–17 and keeps the batch dimension symbolic
// (reshapes copy it with 0), so the graphs also run with another batch size.
#pragma once
#include "resin/nn/module.h"

namespace resin::nn::emit {

// x [..., in] · Wᵀ + b (W [out, in]; b may be undefined): Gemm for 2-D x, MatMul + Add otherwise.
OnnxValue linear(OnnxEmitter& g, const OnnxValue& x, const Tensor& w, const Tensor& b);
// 2-D convolution with symmetric padding.
OnnxValue conv2d(OnnxEmitter& g, const OnnxValue& x, const Tensor& w, const Tensor& b, int64_t stride,
                 int64_t padding, int64_t dilation = 1, int64_t groups = 1);
// Eval-mode batch norm; weight/bias may be undefined (non-affine).
OnnxValue batch_norm(OnnxEmitter& g, const OnnxValue& x, const Tensor& mean, const Tensor& var, const Tensor& w,
                     const Tensor& b, double eps, double momentum);
// LayerNormalization (opset 17) or its decomposition (earlier opsets).
OnnxValue layer_norm(OnnxEmitter& g, const OnnxValue& x, int64_t normalized_dims, const Tensor& w,
                     const Tensor& b, double eps);
OnnxValue relu(OnnxEmitter& g, const OnnxValue& x);
OnnxValue gelu(OnnxEmitter& g, const OnnxValue& x);  // exact (erf) form
OnnxValue add(OnnxEmitter& g, const OnnxValue& a, const OnnxValue& b);
OnnxValue mul(OnnxEmitter& g, const OnnxValue& a, const OnnxValue& b);
OnnxValue mul(OnnxEmitter& g, const OnnxValue& a, double s);
// 1 - a
OnnxValue one_minus(OnnxEmitter& g, const OnnxValue& a);
OnnxValue sigmoid(OnnxEmitter& g, const OnnxValue& x);
// Reshape; 0 copies the input's dim at that index, -1 is inferred (ONNX semantics).
OnnxValue reshape(OnnxEmitter& g, const OnnxValue& x, const std::vector<int64_t>& shape);
OnnxValue transpose(OnnxEmitter& g, const OnnxValue& x, const std::vector<int64_t>& perm);
// torch.flatten(x, start, end).
OnnxValue flatten(OnnxEmitter& g, const OnnxValue& x, int64_t start, int64_t end);
OnnxValue concat(OnnxEmitter& g, const std::vector<OnnxValue>& xs, int64_t axis);
// x[:, ..., start:end:step] along `axis`.
OnnxValue slice(OnnxEmitter& g, const OnnxValue& x, int64_t axis, int64_t start, int64_t end, int64_t step = 1);
OnnxValue max_pool2d(OnnxEmitter& g, const OnnxValue& x, const Pool2dOptions& o);
OnnxValue avg_pool2d(OnnxEmitter& g, const OnnxValue& x, const Pool2dOptions& o);
// Exact where the bins are even (H % out_h == 0 and W % out_w == 0: AveragePool) or single pixels
// (out_h % H == 0 and out_w % W == 0: repetition); throws otherwise.
OnnxValue adaptive_avg_pool2d(OnnxEmitter& g, const OnnxValue& x, int64_t out_h, int64_t out_w);
// Mean over `dims`.
OnnxValue mean(OnnxEmitter& g, const OnnxValue& x, const std::vector<int64_t>& dims, bool keepdim);

}  // namespace resin::nn::emit
