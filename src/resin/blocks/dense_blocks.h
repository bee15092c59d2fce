// The pieces of DenseNet (Huang et al. 2017, "Densely Connected Convolutional Networks"), with
// torchvision's structure and parameter names so that weights move to and from torchvision as is.
//
//   DenseLayer:  new = conv2(relu(norm2(conv1(relu(norm1(x))))))      bottleneck (B): 1x1 to
//                bn_size*growth channels, then 3x3 to growth channels
//                new = conv1(relu(norm1(x)))                           basic: one 3x3 to growth
//   DenseBlock:  x -> concat(x, new_1, new_2, ...) along channels; denselayer{1..N}
//   Transition:  avg_pool2x2(conv(relu(norm(x))))                      1x1 conv, `out` channels
//
// Input x is [N, C, H, W]; a layer's output has `growth` channels; a block's has
// in + layers * growth. Dropout (drop_rate > 0, training only) follows the layer's last conv as in
// torchvision; with `drop_after_every_conv` it also follows the bottleneck 1x1 and the
// transition conv, as in the paper's CIFAR setting ("a dropout layer after each convolutional
// layer (except the first one)").
#pragma once
#include "resin/nn/layers.h"

namespace resin::blocks {

// Runs its named children in registration order, like torch.nn.Sequential(OrderedDict(...)).
class NamedSequential : public nn::Module {
 public:
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
};

struct DenseLayerOptions {
  int64_t in = 0, growth = 32;
  int64_t bn_size = 4;  // bottleneck width = bn_size * growth; 0: no bottleneck (basic DenseNet)
  double drop_rate = 0.0;
  bool drop_after_every_conv = false;
};

class DenseLayer : public nn::Module {
 public:
  explicit DenseLayer(const DenseLayerOptions& o);
  std::string type_name() const override { return "DenseLayer"; }
  // The new features only ([N, growth, H, W]).
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  Tensor drop(const Tensor& x) const;
  DenseLayerOptions o_;
  std::shared_ptr<nn::BatchNorm> norm1_, norm2_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
};

class DenseBlock : public nn::Module {
 public:
  // Layer i (1-based) sees o.in + (i - 1) * o.growth channels.
  DenseBlock(int64_t num_layers, const DenseLayerOptions& o);
  std::string type_name() const override { return "DenseBlock"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  int64_t out_channels() const { return out_; }

 private:
  std::vector<std::shared_ptr<DenseLayer>> layers_;
  int64_t out_;
};

class Transition : public nn::Module {
 public:
  Transition(int64_t in, int64_t out, double drop_rate = 0.0);
  std::string type_name() const override { return "Transition"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  std::shared_ptr<nn::BatchNorm> norm_;
  std::shared_ptr<nn::Conv2d> conv_;
  double drop_rate_;
};

}  // namespace resin::blocks
