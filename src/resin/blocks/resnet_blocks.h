// The residual blocks of He et al. (2015), in torchvision's structure and parameter names so that
// weights load from and into torchvision unchanged.
//
//   BasicBlock:  y = relu( bn2(conv2( relu(bn1(conv1(x))) )) + shortcut(x) )        (3x3, 3x3)
//   Bottleneck:  y = relu( bn3(conv3( relu(bn2(conv2( relu(bn1(conv1(x))) ))) )) + shortcut(x) )
//                (1x1 reduce, 3x3 [grouped: ResNeXt], 1x1 expand x4; stride on the 3x3 as torchvision v1.5)
//
// shortcut(x) is x when shapes match; otherwise option A (He 2015 §4.2: subsample by the stride and
// zero-pad the new channels, no parameters) or option B (1x1 conv + BN projection, torchvision's
// `downsample`). With residual = false the block is its plain twin: y = relu(F(x)).
#pragma once
#include "resin/nn/layers.h"

namespace resin::blocks {

enum class ShortcutKind {
  zero_pad,    // option A: x[:, :, ::s, ::s] padded with zero channels
  projection,  // option B: 1x1 conv (stride s) + BN when the shape changes, identity otherwise
};

struct BlockOptions {
  int64_t in = 0, planes = 0, stride = 1;
  ShortcutKind shortcut = ShortcutKind::projection;
  bool residual = true;          // false: plain block without the shortcut
  int64_t groups = 1;            // ResNeXt cardinality (bottleneck only)
  int64_t base_width = 64;       // width per group (bottleneck only; 64 = plain ResNet)
  bool zero_init_last_bn = false;  // gamma of the branch's last BN starts at 0 (Goyal et al. 2017)
  // Pre-activation blocks only (preact_blocks.h):
  double dropout = 0.0;            // dropout between the 3x3 convs (Zagoruyko & Komodakis 2016)
  bool shared_preact = false;      // the shortcut sees BN-ReLU(x) instead of x (first block of a stage)
};

// The shortcut a block needs for `out` output channels: nullptr for identity (or residual = false),
// else ZeroPadShortcut (option A) or `projection` (option B). Post-activation blocks project with
// 1x1 conv + BN; pre-activation blocks with a bare 1x1 conv (their input is already normalised).
nn::ModulePtr make_shortcut(const BlockOptions& o, int64_t out, bool projection_bn = true);

// Option A shortcut: no parameters.
class ZeroPadShortcut : public nn::Module {
 public:
  ZeroPadShortcut(int64_t in, int64_t out, int64_t stride) : in_(in), out_(out), stride_(stride) {}
  std::string type_name() const override { return "ZeroPadShortcut"; }
  std::string extra_repr() const override { return str_cat(in_, " -> ", out_, ", stride=", stride_); }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }
  int64_t stride() const { return stride_; }

 private:
  int64_t in_, out_, stride_;
};

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  explicit BasicBlock(const BlockOptions& o);
  std::string type_name() const override { return o_.residual ? "BasicBlock" : "PlainBasicBlock"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // The residual branch F(x) alone (for lesion and path analyses).
  Tensor branch(const Tensor& x);
  Tensor shortcut(const Tensor& x);
  const BlockOptions& options() const { return o_; }

 private:
  BlockOptions o_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_;
  nn::ModulePtr downsample_;
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  explicit Bottleneck(const BlockOptions& o);
  std::string type_name() const override { return o_.residual ? "Bottleneck" : "PlainBottleneck"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  Tensor branch(const Tensor& x);
  Tensor shortcut(const Tensor& x);
  const BlockOptions& options() const { return o_; }

 private:
  BlockOptions o_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_, bn3_;
  nn::ModulePtr downsample_;
};

}  // namespace resin::blocks
