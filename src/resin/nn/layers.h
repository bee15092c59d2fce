// Standard layers. Options are structs with designated initialisers:
//   Conv2d({.in = 64, .out = 64, .kernel = 3, .padding = 1, .bias = false})
// Default initialisation matches PyTorch's (kaiming-uniform with a = sqrt(5) for conv/linear
// weights, uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases), drawn from default_generator().
#pragma once
#include <functional>

#include "resin/nn/module.h"

namespace resin::nn {

struct Conv2dOptions {
  int64_t in = 0, out = 0, kernel = 3, stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& o);
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  const Conv2dOptions& options() const { return o_; }
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;
  Tensor& weight() { return own_parameters()[0].second; }
  Tensor bias() { return o_.bias ? own_parameters()[1].second : Tensor(); }

 private:
  Conv2dOptions o_;
};

struct LinearOptions {
  int64_t in = 0, out = 0;
  bool bias = true;
};
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& o);
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;
  Tensor& weight() { return own_parameters()[0].second; }
  Tensor bias() { return o_.bias ? own_parameters()[1].second : Tensor(); }

 private:
  LinearOptions o_;
};

struct BatchNormOptions {
  int64_t features = 0;
  double eps = 1e-5, momentum = 0.1;
  bool affine = true, track_running_stats = true;
};
// BatchNorm over [N, C, ...]; the same class serves BatchNorm1d and BatchNorm2d.
class BatchNorm : public Module {
 public:
  BatchNorm(const BatchNormOptions& o, std::string name);
  std::string type_name() const override { return name_; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;
  // relu(forward(x)) with the ReLU fused into the normalisation (ops batch_norm_relu).
  Tensor forward_relu(const Tensor& x);
  Tensor weight() const { return find("weight", true); }
  Tensor bias() const { return find("bias", true); }
  Tensor running_mean() const { return find("running_mean", false); }
  Tensor running_var() const { return find("running_var", false); }
  const BatchNormOptions& options() const { return o_; }
  // Replaces the training-mode normalisation with batch statistics — e.g. synchronized BatchNorm,
  // whose statistics span every process (distributed/sync_batch_norm.h). It receives this module
  // and the input and must update the running statistics itself; num_batches_tracked is counted
  // here. An empty function restores batch_norm(). Eval mode always uses the running statistics.
  using TrainingForward = std::function<Tensor(BatchNorm& self, const Tensor& x)>;
  void set_training_forward(TrainingForward f) { training_forward_ = std::move(f); }
  bool has_training_forward() const { return static_cast<bool>(training_forward_); }

 private:
  Tensor run(const Tensor& x, bool relu);
  Tensor find(const std::string& n, bool param) const;
  BatchNormOptions o_;
  std::string name_;
  TrainingForward training_forward_;
};
inline std::shared_ptr<BatchNorm> BatchNorm2d(const BatchNormOptions& o) { return std::make_shared<BatchNorm>(o, "BatchNorm2d"); }
inline std::shared_ptr<BatchNorm> BatchNorm1d(const BatchNormOptions& o) { return std::make_shared<BatchNorm>(o, "BatchNorm1d"); }

struct LayerNormOptions {
  Shape shape;
  double eps = 1e-5;
  bool affine = true;
};
class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& o);
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override { return o_.shape.str(); }
  Tensor forward(const Tensor& x) override;
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;

 private:
  LayerNormOptions o_;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim);
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& indices) override;
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5) : p_(p) {
    RESIN_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got ", p);
  }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + std::to_string(p_); }
  Tensor forward(const Tensor& x) override { return dropout(x, p_, is_training()); }
  OnnxValue export_onnx(OnnxEmitter&, const OnnxValue& x) override { return x; }  // eval: identity

 private:
  double p_;
};

// Stateless activation and shape layers. `emit` gives the ONNX form (none: not exportable).
using OnnxEmitFn = std::function<OnnxValue(OnnxEmitter&, const OnnxValue&)>;
class Lambda : public Module {
 public:
  Lambda(std::string name, std::function<Tensor(const Tensor&)> f, OnnxEmitFn emit = nullptr)
      : name_(std::move(name)), f_(std::move(f)), emit_(std::move(emit)) {}
  std::string type_name() const override { return name_; }
  Tensor forward(const Tensor& x) override { return f_(x); }
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override {
    return emit_ ? emit_(g, x) : Module::export_onnx(g, x);
  }

 private:
  std::string name_;
  std::function<Tensor(const Tensor&)> f_;
  OnnxEmitFn emit_;
};
ModulePtr ReLU();
ModulePtr GELU();
ModulePtr Sigmoid();
ModulePtr Tanh();
ModulePtr Identity();
ModulePtr Flatten(int64_t start = 1, int64_t end = -1);
ModulePtr MaxPool2d(const Pool2dOptions& o);
ModulePtr AvgPool2d(const Pool2dOptions& o);
ModulePtr AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);

// Children named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> mods);
  std::string type_name() const override { return "Sequential"; }
  Sequential& push_back(ModulePtr m);
  Tensor forward(const Tensor& x) override;
  OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x) override;
  size_t size() const { return children().size(); }
  ModulePtr operator[](size_t i) const { return children()[i].second; }
};

}  // namespace resin::nn
