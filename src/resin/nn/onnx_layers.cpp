// ONNX forms of the standard layers (nn/onnx_layers.h).
#include "resin/nn/onnx_layers.h"

#include <cmath>

#include "resin/nn/layers.h"

namespace resin::nn {

namespace emit {

using Ints = std::vector<int64_t>;

OnnxValue linear(OnnxEmitter& g, const OnnxValue& x, const Tensor& w, const Tensor& b) {
  RESIN_CHECK(x.dim() >= 1, "linear: expected [..., in], got ", x.shape());
  if (x.dim() == 2) {
    std::vector<OnnxValue> in{x, g.param(w)};
    if (b.defined()) in.push_back(g.param(b));
    return g.op1("Gemm", in, {{"transB", int64_t{1}}});
  }
  OnnxValue h = g.op1("MatMul", {x, transpose(g, g.param(w), {1, 0})});
  return b.defined() ? add(g, h, g.param(b)) : h;
}

OnnxValue conv2d(OnnxEmitter& g, const OnnxValue& x, const Tensor& w, const Tensor& b, int64_t stride,
                 int64_t padding, int64_t dilation, int64_t groups) {
  std::vector<OnnxValue> in{x, g.param(w)};
  if (b.defined()) in.push_back(g.param(b));
  return g.op1("Conv", in,
               {{"kernel_shape", Ints{w.size(2), w.size(3)}},
                {"strides", Ints{stride, stride}},
                {"pads", Ints{padding, padding, padding, padding}},
                {"dilations", Ints{dilation, dilation}},
                {"group", groups}});
}

OnnxValue batch_norm(OnnxEmitter& g, const OnnxValue& x, const Tensor& mean, const Tensor& var, const Tensor& w,
                     const Tensor& b, double eps, double momentum) {
  RESIN_CHECK(mean.defined() && var.defined(),
              "BatchNorm without running statistics normalises with batch statistics in eval mode, which "
              "ONNX's BatchNormalization cannot express");
  const int64_t c = mean.numel();
  OnnxValue scale = w.defined() ? g.param(w) : g.constant(ones({c}));
  OnnxValue bias = b.defined() ? g.param(b) : g.constant(zeros({c}));
  // ONNX's momentum weighs the old running value (torch's weighs the new batch).
  return g.op1("BatchNormalization", {x, scale, bias, g.param(mean), g.param(var)},
               {{"epsilon", eps}, {"momentum", 1.0 - momentum}});
}

OnnxValue layer_norm(OnnxEmitter& g, const OnnxValue& x, int64_t k, const Tensor& w, const Tensor& b,
                     double eps) {
  RESIN_CHECK(k >= 1 && k <= x.dim(), "layer_norm: ", k, " normalised dims for input ", x.shape());
  if (g.opset() >= 17) {
    Shape ns(x.shape().begin() + (x.dim() - k), x.shape().end());
    OnnxValue scale = w.defined() ? g.param(w) : g.constant(ones(ns));
    std::vector<OnnxValue> in{x, scale};
    if (b.defined()) in.push_back(g.param(b));
    return g.op1("LayerNormalization", in, {{"axis", -k}, {"epsilon", eps}});
  }
  Ints axes;
  for (int64_t i = -k; i < 0; ++i) axes.push_back(i);
  OnnxValue d = g.op1("Sub", {x, g.op1("ReduceMean", {x}, {{"axes", axes}})});
  OnnxValue var = g.op1("ReduceMean", {mul(g, d, d)}, {{"axes", axes}});
  OnnxValue y = g.op1("Div", {d, g.op1("Sqrt", {g.op1("Add", {var, g.scalar(eps)})})});
  if (w.defined()) y = mul(g, y, g.param(w));
  return b.defined() ? add(g, y, g.param(b)) : y;
}

OnnxValue relu(OnnxEmitter& g, const OnnxValue& x) { return g.op1("Relu", {x}); }

OnnxValue gelu(OnnxEmitter& g, const OnnxValue& x) {
  // x · Φ(x) = 0.5 · x · (1 + erf(x / √2)); ONNX has a Gelu op only from opset 20.
  OnnxValue e = g.op1("Erf", {g.op1("Div", {x, g.scalar(std::sqrt(2.0))})});
  return mul(g, mul(g, x, 0.5), add(g, e, g.scalar(1.0)));
}

OnnxValue add(OnnxEmitter& g, const OnnxValue& a, const OnnxValue& b) { return g.op1("Add", {a, b}); }
OnnxValue mul(OnnxEmitter& g, const OnnxValue& a, const OnnxValue& b) { return g.op1("Mul", {a, b}); }
OnnxValue mul(OnnxEmitter& g, const OnnxValue& a, double s) { return mul(g, a, g.scalar(s)); }
OnnxValue one_minus(OnnxEmitter& g, const OnnxValue& a) { return g.op1("Sub", {g.scalar(1.0), a}); }
OnnxValue sigmoid(OnnxEmitter& g, const OnnxValue& x) { return g.op1("Sigmoid", {x}); }

OnnxValue reshape(OnnxEmitter& g, const OnnxValue& x, const Ints& shape) {
  return g.op1("Reshape", {x, g.ints(shape)});
}

OnnxValue transpose(OnnxEmitter& g, const OnnxValue& x, const Ints& perm) {
  return g.op1("Transpose", {x}, {{"perm", perm}});
}

OnnxValue flatten(OnnxEmitter& g, const OnnxValue& x, int64_t start, int64_t end) {
  const int64_t n = x.dim();
  start = wrap_dim(start, std::max<int64_t>(n, 1), "flatten");
  end = wrap_dim(end, std::max<int64_t>(n, 1), "flatten");
  RESIN_CHECK(start <= end, "flatten: start ", start, " after end ", end);
  if (start == end) return x;
  if (start == 1 && end == n - 1) return g.op1("Flatten", {x}, {{"axis", int64_t{1}}});
  // Dims before `start` are copied (0), the flattened group is inferred, later dims are explicit.
  Ints shape(static_cast<size_t>(start), 0);
  shape.push_back(-1);
  for (int64_t i = end + 1; i < n; ++i) shape.push_back(x.shape()[static_cast<size_t>(i)]);
  return reshape(g, x, shape);
}

OnnxValue concat(OnnxEmitter& g, const std::vector<OnnxValue>& xs, int64_t axis) {
  return xs.size() == 1 ? xs[0] : g.op1("Concat", xs, {{"axis", axis}});
}

OnnxValue slice(OnnxEmitter& g, const OnnxValue& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  return g.op1("Slice", {x, g.ints({start}), g.ints({end}), g.ints({axis}), g.ints({step})});
}

namespace {
std::vector<OnnxAttr> pool_attrs(const Pool2dOptions& o) {
  RESIN_CHECK(o.kernel.size() == 2 && (o.stride.empty() || o.stride.size() == 2) && o.padding.size() == 2,
              "pool2d: expected 2-D kernel, stride and padding");
  const Ints stride = o.stride.empty() ? o.kernel : o.stride;
  return {{"kernel_shape", o.kernel},
          {"strides", stride},
          {"pads", Ints{o.padding[0], o.padding[1], o.padding[0], o.padding[1]}}};
}
}  // namespace

OnnxValue max_pool2d(OnnxEmitter& g, const OnnxValue& x, const Pool2dOptions& o) {
  return g.op1("MaxPool", {x}, pool_attrs(o));
}

OnnxValue avg_pool2d(OnnxEmitter& g, const OnnxValue& x, const Pool2dOptions& o) {
  auto attrs = pool_attrs(o);
  attrs.push_back({"count_include_pad", int64_t{o.count_include_pad ? 1 : 0}});
  return g.op1("AveragePool", {x}, attrs);
}

OnnxValue adaptive_avg_pool2d(OnnxEmitter& g, const OnnxValue& x, int64_t oh, int64_t ow) {
  RESIN_CHECK(x.dim() == 4, "adaptive_avg_pool2d: expected [N, C, H, W], got ", x.shape());
  const int64_t h = x.shape()[2], w = x.shape()[3];
  if (oh == 1 && ow == 1) return g.op1("GlobalAveragePool", {x});
  if (oh == h && ow == w) return x;
  if (oh % h == 0 && ow % w == 0) {
    // Upsampling by whole factors: every bin is one input pixel, repeated (oh/h)×(ow/w) times.
    OnnxValue e = reshape(g, x, {0, 0, h, 1, w, 1});
    e = g.op1("Expand", {e, g.ints({1, 1, 1, oh / h, 1, ow / w})});
    return reshape(g, e, {0, 0, oh, ow});
  }
  RESIN_CHECK(h % oh == 0 && w % ow == 0, "adaptive_avg_pool2d from ", h, "x", w, " to ", oh, "x", ow,
              " has uneven bins, which no ONNX pooling op expresses; export at an input size whose feature map "
              "is a multiple or a whole fraction of the output");
  return avg_pool2d(g, x, {.kernel = {h / oh, w / ow}, .stride = {h / oh, w / ow}});
}

OnnxValue mean(OnnxEmitter& g, const OnnxValue& x, const Ints& dims, bool keepdim) {
  return g.op1("ReduceMean", {x}, {{"axes", dims}, {"keepdims", int64_t{keepdim ? 1 : 0}}});
}

}  // namespace emit

OnnxValue Conv2d::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  return emit::conv2d(g, x, weight(), bias(), o_.stride, o_.padding, o_.dilation, o_.groups);
}

OnnxValue Linear::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  return emit::linear(g, x, weight(), bias());
}

OnnxValue BatchNorm::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() >= 2 && x.shape()[1] == o_.features, name_, ": expected input with ", o_.features,
              " channels in dim 1, got shape ", x.shape());
  return emit::batch_norm(g, x, running_mean(), running_var(), weight(), bias(), o_.eps, o_.momentum);
}

OnnxValue LayerNorm::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  Tensor w = o_.affine ? own_parameters()[0].second : Tensor();
  Tensor b = o_.affine ? own_parameters()[1].second : Tensor();
  RESIN_CHECK(x.dim() >= static_cast<int64_t>(o_.shape.size()), "LayerNorm: input ", x.shape(),
              " has fewer dims than the normalised shape ", o_.shape);
  return emit::layer_norm(g, x, static_cast<int64_t>(o_.shape.size()), w, b, o_.eps);
}

OnnxValue Embedding::export_onnx(OnnxEmitter& g, const OnnxValue& idx) {
  return g.op1("Gather", {g.param(own_parameters()[0].second), idx}, {{"axis", int64_t{0}}});
}

OnnxValue Sequential::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = x;
  for (auto& [_, m] : children()) h = g.module(*m, h);
  return h;
}

}  // namespace resin::nn
