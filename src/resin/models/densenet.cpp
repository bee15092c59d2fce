#include "resin/models/densenet.h"

#include <cmath>

#include "resin/nn/init.h"

namespace resin::models {

namespace {

// Spatial size after the stem and every transition, or 0 once it vanishes.
int64_t feature_size(int64_t h, bool imagenet_stem, size_t transitions) {
  if (imagenet_stem) h = ((h + 6 - 7) / 2 + 1 + 2 - 3) / 2 + 1;  // 7x7/2 conv (pad 3), 3x3/2 max pool (pad 1)
  for (size_t t = 0; t < transitions && h > 0; ++t) h /= 2;
  return h;
}

}  // namespace

DenseNet::DenseNet(const DenseNetConfig& c) : c_(c) {
  RESIN_CHECK(!c.blocks.empty() && c.growth > 0 && c.init_features > 0 && c.bn_size >= 0, "DenseNet: invalid "
              "config: ", c.blocks.size(), " blocks, growth=", c.growth, " init_features=", c.init_features,
              " bn_size=", c.bn_size);
  RESIN_CHECK(c.compression > 0 && c.compression <= 1, "DenseNet: compression must be in (0, 1], got ", c.compression);
  RESIN_CHECK(c.in_channels > 0 && c.num_classes > 0, "DenseNet: invalid in_channels=", c.in_channels,
              " num_classes=", c.num_classes);
  features_ = register_module("features", std::make_shared<blocks::NamedSequential>());
  const bool imagenet = c.stem == StemKind::imagenet;
  while (feature_size(min_input_, imagenet, c.blocks.size() - 1) < 1) ++min_input_;
  features_->register_module("conv0", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                          .in = c.in_channels, .out = c.init_features, .kernel = imagenet ? 7 : 3,
                                          .stride = imagenet ? 2 : 1, .padding = imagenet ? 3 : 1, .bias = false}));
  if (imagenet) {
    features_->register_module("norm0", nn::BatchNorm2d({.features = c.init_features}));
    features_->register_module("relu0", nn::ReLU());
    features_->register_module("pool0", nn::MaxPool2d({.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}));
  }
  int64_t ch = c.init_features;
  for (size_t b = 0; b < c.blocks.size(); ++b) {
    auto block = std::make_shared<blocks::DenseBlock>(
        c.blocks[b], blocks::DenseLayerOptions{.in = ch, .growth = c.growth, .bn_size = c.bn_size,
                                               .drop_rate = c.drop_rate,
                                               .drop_after_every_conv = c.drop_after_every_conv});
    features_->register_module("denseblock" + std::to_string(b + 1), block);
    ch = block->out_channels();
    if (b + 1 < c.blocks.size()) {
      // floor, as torchvision (num_features // 2) and the reference code (math.floor).
      const auto out = static_cast<int64_t>(std::floor(static_cast<double>(ch) * c.compression));
      features_->register_module("transition" + std::to_string(b + 1), std::make_shared<blocks::Transition>(
                                                                          ch, out, c.drop_after_every_conv ? c.drop_rate : 0.0));
      ch = out;
    }
  }
  features_->register_module("norm5", nn::BatchNorm2d({.features = ch}));
  classifier_ = register_module("classifier", std::make_shared<nn::Linear>(nn::LinearOptions{.in = ch, .out = c.num_classes}));
  // torchvision's initialisation: He-normal (fan_in) convs, BN gamma 1 / beta 0, zero classifier bias.
  for (auto& [_, m] : named_modules())
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) nn::init::kaiming_normal_(conv->weight(), nn::init::FanMode::fan_in);
  Tensor bias = classifier_->bias();
  nn::init::constant_(bias, 0.0);
}

Tensor DenseNet::features(const Tensor& x) {
  RESIN_CHECK(x.dim() == 4 && x.size(1) == c_.in_channels && x.size(2) >= min_input_ && x.size(3) >= min_input_,
              "DenseNet: expected input [N, ", c_.in_channels, ", H, W] with H, W >= ", min_input_, ", got ", x.shape());
  return global_avg_pool2d(relu(features_->forward(x))).flatten(1);
}

Tensor DenseNet::forward(const Tensor& x) { return classifier_->forward(features(x)); }

}  // namespace resin::models
