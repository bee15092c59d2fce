// One builder for the ResNet family: ResNet (He et al. 2015), its plain twins, ResNeXt (groups),
// Wide ResNet-50/101 (base width) and the CIFAR 6n+2 networks — all configuration, like
// torchvision's ResNet(block, layers, groups, width_per_group).
//
// Parameter names follow torchvision: conv1, bn1, layer{1..}.{i}.{conv1,bn1,...,downsample.{0,1}}, fc.
#pragma once
#include "resin/blocks/resnet_blocks.h"

namespace resin::models {

enum class BlockKind { basic, bottleneck };
enum class StemKind {
  imagenet,  // 7x7/2 conv (64) + BN + ReLU + 3x3/2 max pool
  cifar,     // 3x3/1 conv (first stage width) + BN + ReLU
};

struct ResNetConfig {
  BlockKind block = BlockKind::basic;
  std::vector<int64_t> layers = {2, 2, 2, 2};     // blocks per stage
  std::vector<int64_t> widths = {64, 128, 256, 512};  // planes per stage (before expansion)
  StemKind stem = StemKind::imagenet;
  int64_t in_channels = 3, num_classes = 1000;
  int64_t groups = 1, width_per_group = 64;
  blocks::ShortcutKind shortcut = blocks::ShortcutKind::projection;
  bool residual = true;             // false: the plain network of the same depth
  bool zero_init_residual = false;  // last BN gamma of every branch starts at 0
};

class ResNet : public nn::Module {
 public:
  explicit ResNet(const ResNetConfig& c);
  std::string type_name() const override { return "ResNet"; }
  Tensor forward(const Tensor& x) override;
  // Features before the classifier ([N, C] after global pooling).
  Tensor features(const Tensor& x);
  const ResNetConfig& config() const { return c_; }
  // The residual blocks in order (for gradient-flow and lesion analyses).
  std::vector<nn::ModulePtr> blocks() const;

 private:
  ResNetConfig c_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm> bn1_;
  std::vector<std::shared_ptr<nn::Sequential>> stages_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace resin::models
