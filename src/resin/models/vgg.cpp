#include "resin/models/vgg.h"

#include "resin/nn/init.h"

namespace resin::models {

std::vector<int64_t> vgg_layers(int depth) {
  switch (depth) {
    case 11: return {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 13: return {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 16: return {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    case 19: return {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
    default: RESIN_FAIL("vgg_layers: VGG is defined for depths 11, 13, 16 and 19, got ", depth);
  }
}

VGG::VGG(const VGGConfig& c) : c_(c) {
  RESIN_CHECK(!c.layers.empty() && c.in_channels > 0 && c.num_classes > 0, "VGG: invalid config: ", c.layers.size(),
              " layers, in_channels=", c.in_channels, " num_classes=", c.num_classes);
  features_ = register_module("features", std::make_shared<nn::Sequential>());
  int64_t ch = c.in_channels;
  for (int64_t width : c.layers) {
    RESIN_CHECK(width >= 0, "VGG: layer widths must be positive (0 = max pool), got ", width);
    if (width == 0) {
      features_->push_back(nn::MaxPool2d({.kernel = {2, 2}, .stride = {2, 2}}));
      continue;
    }
    features_->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = ch, .out = width, .kernel = 3, .padding = 1}));
    if (c.batch_norm) features_->push_back(nn::BatchNorm2d({.features = width}));
    features_->push_back(nn::ReLU());
    ch = width;
  }
  classifier_ = register_module("classifier", std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = ch * 7 * 7, .out = 4096}), nn::ReLU(),
      std::make_shared<nn::Dropout>(c.dropout),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4096, .out = 4096}), nn::ReLU(),
      std::make_shared<nn::Dropout>(c.dropout),
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4096, .out = c.num_classes})}));
  // torchvision's initialisation: He-normal (fan_out) convs, zero biases, N(0, 0.01) linear weights.
  for (auto& [_, m] : named_modules()) {
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) {
      nn::init::kaiming_normal_(conv->weight());
      Tensor b = conv->bias();
      nn::init::constant_(b, 0.0);
    } else if (auto fc = std::dynamic_pointer_cast<nn::Linear>(m)) {
      nn::init::normal_(fc->weight(), 0.0, 0.01);
      Tensor b = fc->bias();
      nn::init::constant_(b, 0.0);
    }
  }
}

Tensor VGG::forward(const Tensor& x) {
  RESIN_CHECK(x.dim() == 4 && x.size(1) == c_.in_channels && x.size(2) >= 32 && x.size(3) >= 32,
              "VGG: expected input [N, ", c_.in_channels, ", H, W] with H, W >= 32 (five 2x2 pools), got ", x.shape());
  Tensor h = adaptive_avg_pool2d(features_->forward(x), 7, 7);
  return classifier_->forward(h.flatten(1));
}

}  // namespace resin::models
