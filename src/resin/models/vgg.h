// One builder for VGG (Simonyan & Zisserman 2015), configurations A/B/D/E = vgg11/13/16/19, with
// or without batch normalisation, in torchvision's structure and parameter names:
//   features.{i}      3x3 convs (with bias) [+ BN] + ReLU, 2x2 max pools, numbered as nn.Sequential
//   avgpool           adaptive average pool to 7x7 (so any input >= 32x32 works)
//   classifier.{0,3,6} Linear(512*7*7, 4096) ReLU Dropout Linear(4096, 4096) ReLU Dropout Linear(4096, classes)
// Forward: x [N, in_channels, H, W] with H, W >= 32 (five 2x2 pools) -> logits [N, num_classes].
#pragma once
#include "resin/nn/layers.h"

namespace resin::models {

struct VGGConfig {
  std::vector<int64_t> layers;  // conv output channels in order; 0 marks a 2x2 max pool
  bool batch_norm = false;
  int64_t in_channels = 3, num_classes = 1000;
  double dropout = 0.5;  // in the classifier, as torchvision
};

// The paper's configurations by depth: 11 (A), 13 (B), 16 (D), 19 (E).
std::vector<int64_t> vgg_layers(int depth);

class VGG : public nn::Module {
 public:
  explicit VGG(const VGGConfig& c);
  std::string type_name() const override { return "VGG"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  const VGGConfig& config() const { return c_; }

 private:
  VGGConfig c_;
  std::shared_ptr<nn::Sequential> features_, classifier_;
};

}  // namespace resin::models
