#include "resin/models/resnet.h"

#include "resin/nn/init.h"

namespace resin::models {

ResNet::ResNet(const ResNetConfig& c) : c_(c) {
  RESIN_CHECK(!c.layers.empty() && c.layers.size() == c.widths.size(), "ResNet: ", c.layers.size(), " stages but ",
              c.widths.size(), " widths");
  RESIN_CHECK(c.in_channels > 0 && c.num_classes > 0, "ResNet: invalid in_channels=", c.in_channels,
              " num_classes=", c.num_classes);
  const int64_t stem_width = c.stem == StemKind::imagenet ? 64 : c.widths[0];
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = c.in_channels, .out = stem_width,
                                        .kernel = c.stem == StemKind::imagenet ? 7 : 3,
                                        .stride = c.stem == StemKind::imagenet ? 2 : 1,
                                        .padding = c.stem == StemKind::imagenet ? 3 : 1, .bias = false}));
  bn1_ = register_module("bn1", nn::BatchNorm2d({.features = stem_width}));
  const int64_t expansion = c.block == BlockKind::basic ? blocks::BasicBlock::kExpansion : blocks::Bottleneck::kExpansion;
  int64_t in = stem_width;
  for (size_t s = 0; s < c.layers.size(); ++s) {
    auto stage = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < c.layers[s]; ++b) {
      blocks::BlockOptions o{.in = in, .planes = c.widths[s], .stride = (s > 0 && b == 0) ? 2 : 1,
                             .shortcut = c.shortcut, .residual = c.residual, .groups = c.groups,
                             .base_width = c.width_per_group, .zero_init_last_bn = c.zero_init_residual};
      if (c.block == BlockKind::basic) stage->push_back(std::make_shared<blocks::BasicBlock>(o));
      else stage->push_back(std::make_shared<blocks::Bottleneck>(o));
      in = c.widths[s] * expansion;
    }
    stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  fc_ = register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = c.num_classes}));
  // torchvision's initialisation: He-normal (fan_out, ReLU gain) for every conv; BN gamma 1, beta 0.
  for (auto& [name, m] : named_modules())
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) nn::init::kaiming_normal_(conv->weight());
}

Tensor ResNet::features(const Tensor& x) {
  RESIN_CHECK(x.dim() == 4 && x.size(1) == c_.in_channels, "ResNet: expected input [N, ", c_.in_channels,
              ", H, W], got ", x.shape());
  Tensor h = relu(bn1_->forward(conv1_->forward(x)));
  if (c_.stem == StemKind::imagenet) h = max_pool2d(h, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
  for (auto& stage : stages_) h = stage->forward(h);
  return global_avg_pool2d(h).flatten(1);
}

Tensor ResNet::forward(const Tensor& x) { return fc_->forward(features(x)); }

std::vector<nn::ModulePtr> ResNet::blocks() const {
  std::vector<nn::ModulePtr> out;
  for (auto& stage : stages_)
    for (auto& [_, b] : stage->children()) out.push_back(b);
  return out;
}

}  // namespace resin::models
