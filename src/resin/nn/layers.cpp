#include "resin/nn/layers.h"

#include <cmath>

#include "resin/nn/init.h"
#include "resin/nn/onnx_layers.h"

namespace resin::nn {

Conv2d::Conv2d(const Conv2dOptions& o) : o_(o) {
  RESIN_CHECK(o.in > 0 && o.out > 0 && o.kernel > 0 && o.stride > 0 && o.dilation > 0 && o.padding >= 0,
              "Conv2d: invalid options in=", o.in, " out=", o.out, " kernel=", o.kernel, " stride=", o.stride,
              " padding=", o.padding, " dilation=", o.dilation);
  RESIN_CHECK(o.groups > 0 && o.in % o.groups == 0 && o.out % o.groups == 0, "Conv2d: channels ", o.in, "->", o.out,
              " not divisible by groups=", o.groups);
  Tensor w = empty({o.out, o.in / o.groups, o.kernel, o.kernel});
  init::kaiming_uniform_(w, std::sqrt(5.0));
  register_parameter("weight", w);
  if (o.bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(o.in / o.groups * o.kernel * o.kernel));
    init::uniform_(register_parameter("bias", empty({o.out})), -bound, bound);
  }
}

std::string Conv2d::extra_repr() const {
  return str_cat(o_.in, ", ", o_.out, ", kernel_size=", o_.kernel, ", stride=", o_.stride,
                 o_.padding ? str_cat(", padding=", o_.padding) : "", o_.dilation > 1 ? str_cat(", dilation=", o_.dilation) : "",
                 o_.groups > 1 ? str_cat(", groups=", o_.groups) : "", o_.bias ? "" : ", bias=False");
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight(), bias(),
                {.stride = {o_.stride, o_.stride}, .padding = {o_.padding, o_.padding},
                 .dilation = {o_.dilation, o_.dilation}, .groups = o_.groups});
}

Linear::Linear(const LinearOptions& o) : o_(o) {
  RESIN_CHECK(o.in > 0 && o.out > 0, "Linear: invalid sizes in=", o.in, " out=", o.out);
  Tensor w = empty({o.out, o.in});
  init::kaiming_uniform_(w, std::sqrt(5.0));
  register_parameter("weight", w);
  if (o.bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(o.in));
    init::uniform_(register_parameter("bias", empty({o.out})), -bound, bound);
  }
}

std::string Linear::extra_repr() const {
  return str_cat("in_features=", o_.in, ", out_features=", o_.out, o_.bias ? "" : ", bias=False");
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight(), bias()); }

BatchNorm::BatchNorm(const BatchNormOptions& o, std::string name) : o_(o), name_(std::move(name)) {
  RESIN_CHECK(o.features > 0, name_, ": number of features must be positive, got ", o.features);
  if (o.affine) {
    register_parameter("weight", ones({o.features}));
    register_parameter("bias", zeros({o.features}));
  }
  if (o.track_running_stats) {
    register_buffer("running_mean", zeros({o.features}));
    register_buffer("running_var", ones({o.features}));
    register_buffer("num_batches_tracked", zeros(Shape{}, {.dtype = DType::i64}));
  }
}

Tensor BatchNorm::find(const std::string& n, bool param) const {
  auto& v = param ? const_cast<BatchNorm*>(this)->own_parameters() : const_cast<BatchNorm*>(this)->own_buffers();
  for (auto& [k, t] : v)
    if (k == n) return t;
  return Tensor();
}

std::string BatchNorm::extra_repr() const { return str_cat(o_.features, ", eps=", o_.eps, ", momentum=", o_.momentum); }

Tensor BatchNorm::forward(const Tensor& x) { return run(x, false); }
Tensor BatchNorm::forward_relu(const Tensor& x) { return run(x, true); }

Tensor BatchNorm::run(const Tensor& x, bool relu) {
  RESIN_CHECK(x.dim() >= 2 && x.size(1) == o_.features, name_, ": expected input with ", o_.features,
              " channels in dim 1, got shape ", x.shape());
  const bool use_batch_stats = is_training() || !o_.track_running_stats;
  if (is_training() && o_.track_running_stats) {
    Tensor nbt = find("num_batches_tracked", false);
    nbt.data<int64_t>()[0] += 1;
  }
  if (is_training() && training_forward_) {
    Tensor y = training_forward_(*this, x);
    return relu ? resin::relu(y) : y;
  }
  return (relu ? batch_norm_relu : batch_norm)(x, running_mean(), running_var(), weight(), bias(), use_batch_stats,
                                               o_.momentum, o_.eps);
}

LayerNorm::LayerNorm(const LayerNormOptions& o) : o_(o) {
  if (o.affine) {
    register_parameter("weight", ones(o.shape));
    register_parameter("bias", zeros(o.shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  Tensor w = o_.affine ? own_parameters()[0].second : Tensor();
  Tensor b = o_.affine ? own_parameters()[1].second : Tensor();
  return layer_norm(x, o_.shape, w, b, o_.eps);
}

Embedding::Embedding(int64_t num, int64_t dim) {
  RESIN_CHECK(num > 0 && dim > 0, "Embedding: invalid sizes ", num, "x", dim);
  init::normal_(register_parameter("weight", empty({num, dim})), 0.0, 1.0);
}
std::string Embedding::extra_repr() const {
  auto& w = const_cast<Embedding*>(this)->own_parameters()[0].second;
  return str_cat(w.size(0), ", ", w.size(1));
}
Tensor Embedding::forward(const Tensor& idx) { return embedding(idx, own_parameters()[0].second); }

ModulePtr ReLU() {
  return std::make_shared<Lambda>("ReLU", [](const Tensor& x) { return relu(x); }, emit::relu);
}
ModulePtr GELU() {
  return std::make_shared<Lambda>("GELU", [](const Tensor& x) { return gelu(x); }, emit::gelu);
}
ModulePtr Sigmoid() {
  return std::make_shared<Lambda>("Sigmoid", [](const Tensor& x) { return sigmoid(x); }, emit::sigmoid);
}
ModulePtr Tanh() {
  return std::make_shared<Lambda>("Tanh", [](const Tensor& x) { return tanh(x); },
                                  [](OnnxEmitter& g, const OnnxValue& x) { return g.op1("Tanh", {x}); });
}
ModulePtr Identity() {
  return std::make_shared<Lambda>("Identity", [](const Tensor& x) { return x; },
                                  [](OnnxEmitter&, const OnnxValue& x) { return x; });
}
ModulePtr Flatten(int64_t s, int64_t e) {
  return std::make_shared<Lambda>(
      "Flatten", [s, e](const Tensor& x) { return x.flatten(s, e); },
      [s, e](OnnxEmitter& g, const OnnxValue& x) { return emit::flatten(g, x, s, e); });
}
ModulePtr MaxPool2d(const Pool2dOptions& o) {
  return std::make_shared<Lambda>(
      "MaxPool2d", [o](const Tensor& x) { return max_pool2d(x, o); },
      [o](OnnxEmitter& g, const OnnxValue& x) { return emit::max_pool2d(g, x, o); });
}
ModulePtr AvgPool2d(const Pool2dOptions& o) {
  return std::make_shared<Lambda>(
      "AvgPool2d", [o](const Tensor& x) { return avg_pool2d(x, o); },
      [o](OnnxEmitter& g, const OnnxValue& x) { return emit::avg_pool2d(g, x, o); });
}
ModulePtr AdaptiveAvgPool2d(int64_t h, int64_t w) {
  return std::make_shared<Lambda>(
      "AdaptiveAvgPool2d", [h, w](const Tensor& x) { return adaptive_avg_pool2d(x, h, w); },
      [h, w](OnnxEmitter& g, const OnnxValue& x) { return emit::adaptive_avg_pool2d(g, x, h, w); });
}

Sequential::Sequential(std::vector<ModulePtr> mods) {
  for (auto& m : mods) push_back(m);
}
Sequential& Sequential::push_back(ModulePtr m) {
  add_child(std::to_string(children().size()), std::move(m));
  return *this;
}
Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& [_, m] : children()) h = m->forward(h);
  return h;
}

}  // namespace resin::nn
