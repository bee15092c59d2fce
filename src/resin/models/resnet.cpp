#include "resin/models/resnet.h"

#include "resin/blocks/preact_blocks.h"
#include "resin/nn/init.h"

namespace resin::models {

namespace {

nn::ModulePtr make_block(BlockKind kind, bool preact, const blocks::BlockOptions& o) {
  if (preact) {
    if (kind == BlockKind::basic) return std::make_shared<blocks::PreActBasicBlock>(o);
    return std::make_shared<blocks::PreActBottleneck>(o);
  }
  if (kind == BlockKind::basic) return std::make_shared<blocks::BasicBlock>(o);
  return std::make_shared<blocks::Bottleneck>(o);
}

}  // namespace

ResNet::ResNet(const ResNetConfig& c) : c_(c) {
  RESIN_CHECK(!c.layers.empty() && c.layers.size() == c.widths.size(), "ResNet: ", c.layers.size(), " stages but ",
              c.widths.size(), " widths");
  RESIN_CHECK(c.in_channels > 0 && c.num_classes > 0, "ResNet: invalid in_channels=", c.in_channels,
              " num_classes=", c.num_classes);
  RESIN_CHECK(!c.preact || c.stem == StemKind::cifar, "ResNet: pre-activation networks are defined here with the "
              "CIFAR stem only");
  RESIN_CHECK(!(c.preact && c.zero_init_residual), "ResNet: zero_init_residual is defined for post-activation "
              "networks only (pre-activation branches end in a conv)");
  RESIN_CHECK(c.dropout == 0.0 || (c.preact && c.block == BlockKind::basic), "ResNet: dropout is defined for "
              "pre-activation basic units only (WRN), got dropout=", c.dropout);
  const int64_t stem_width = c.stem_width > 0 ? c.stem_width : c.stem == StemKind::imagenet ? 64 : c.widths[0];
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = c.in_channels, .out = stem_width,
                                        .kernel = c.stem == StemKind::imagenet ? 7 : 3,
                                        .stride = c.stem == StemKind::imagenet ? 2 : 1,
                                        .padding = c.stem == StemKind::imagenet ? 3 : 1, .bias = false}));
  if (!c.preact) bn1_ = register_module("bn1", nn::BatchNorm2d({.features = stem_width}));
  const int64_t expansion = c.block == BlockKind::basic ? blocks::BasicBlock::kExpansion : blocks::Bottleneck::kExpansion;
  int64_t in = stem_width;
  for (size_t s = 0; s < c.layers.size(); ++s) {
    auto stage = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < c.layers[s]; ++b) {
      blocks::BlockOptions o{.in = in, .planes = c.widths[s], .stride = (s > 0 && b == 0) ? 2 : 1,
                             .shortcut = c.shortcut, .residual = c.residual, .groups = c.groups,
                             .base_width = c.width_per_group, .zero_init_last_bn = c.zero_init_residual,
                             .dropout = c.dropout, .shared_preact = c.preact && b == 0};
      stage->push_back(make_block(c.block, c.preact, o));
      in = c.widths[s] * expansion;
    }
    stages_.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  if (c.preact) bn_final_ = register_module("bn_final", nn::BatchNorm2d({.features = in}));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = c.num_classes}));
  // torchvision's initialisation: He-normal (fan_out, ReLU gain) for every conv; BN gamma 1, beta 0.
  for (auto& [name, m] : named_modules())
    if (auto conv = std::dynamic_pointer_cast<nn::Conv2d>(m)) nn::init::kaiming_normal_(conv->weight());
}

Tensor ResNet::features(const Tensor& x) {
  RESIN_CHECK(x.dim() == 4 && x.size(1) == c_.in_channels, "ResNet: expected input [N, ", c_.in_channels,
              ", H, W], got ", x.shape());
  Tensor h = conv1_->forward(x);
  if (!c_.preact) h = bn1_->forward_relu(h);
  if (c_.stem == StemKind::imagenet) h = max_pool2d(h, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
  for (auto& stage : stages_) h = stage->forward(h);
  if (c_.preact) h = relu(bn_final_->forward(h));
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
