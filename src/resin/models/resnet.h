// One builder for the ResNet family: ResNet (He et al. 2015), its plain twins, ResNeXt (groups),
// Wide ResNet-50/101 (base width), the CIFAR 6n+2 networks, ResNeXt-29, and the pre-activation
// networks (He et al. 2016: ResNet-110/164/1001; Zagoruyko & Komodakis 2016: WRN-d-k) — all
// configuration, like torchvision's ResNet(block, layers, groups, width_per_group).
//
// Parameter names follow torchvision: conv1, bn1, layer{1..}.{i}.{conv1,bn1,...,downsample.{0,1}}, fc.
// Pre-activation networks (preact = true) have no stem BN (each unit normalises its own input) and
// end with BN-ReLU before the pool, as the reference code does: conv1, layer{s}.{i}.{bn1,conv1,...,
// downsample.0}, bn_final, fc. The first unit of every stage shares its pre-activation with the
// shortcut (see preact_blocks.h). Stride goes to the 3x3 in post-activation bottlenecks
// (torchvision v1.5, ResNeXt) and to the first 1x1 in pre-activation bottlenecks (ResNet-1001 code).
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
  bool zero_init_residual = false;  // last BN gamma of every branch starts at 0 (post-activation only)
  bool preact = false;              // pre-activation units (CIFAR stem only)
  int64_t stem_width = 0;           // stem conv channels; 0: 64 (ImageNet stem) or widths[0] (CIFAR stem)
  double dropout = 0.0;             // between the 3x3 convs of pre-activation basic units (WRN)
};

class ResNet : public nn::Module {
 public:
  explicit ResNet(const ResNetConfig& c);
  std::string type_name() const override { return "ResNet"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // Features before the classifier ([N, C] after global pooling).
  Tensor features(const Tensor& x);
  const ResNetConfig& config() const { return c_; }
  // The residual blocks in order (for gradient-flow and lesion analyses).
  std::vector<nn::ModulePtr> blocks() const;

 private:
  ResNetConfig c_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm> bn1_;       // stem BN (post-activation networks)
  std::shared_ptr<nn::BatchNorm> bn_final_;  // BN before the pool (pre-activation networks)
  std::vector<std::shared_ptr<nn::Sequential>> stages_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace resin::models
