// Pre-activation residual units (He et al. 2016, "Identity Mappings in Deep Residual Networks"):
// BN and ReLU come before each convolution, and nothing follows the addition, so the shortcut path
// stays a clean identity from block to block.
//
//   PreActBasicBlock:  a = relu(bn1(x));  y = conv2( [dropout]( relu(bn2(conv1(a))) ) ) + s
//   PreActBottleneck:  a = relu(bn1(x));  y = conv3(relu(bn3(conv2(relu(bn2(conv1(a))))))) + s
//                      (1x1 reduce with the stride, as in the authors' ResNet-1001 code; 3x3, grouped
//                      when groups > 1; 1x1 expand x4)
//
// s is the shortcut: x, or — when `shared_preact` is set (the first block of a stage, as in the
// reference code's 'both_preact' units) or the shortcut is a projection — applied to a, the
// pre-activated input. Option A zero-pads; option B projects with a bare 1x1 conv (no BN: a is
// already normalised), as in the authors' and Zagoruyko's code. Dropout (Wide ResNets) sits
// between the two 3x3 convs, after the ReLU. Parameter names: bn1, conv1, bn2, conv2, [bn3,
// conv3], downsample.0 (projection conv). With residual = false the unit is its plain twin y = F(x).
#pragma once
#include "resin/blocks/resnet_blocks.h"

namespace resin::blocks {

class PreActBasicBlock : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  explicit PreActBasicBlock(const BlockOptions& o);
  std::string type_name() const override { return o_.residual ? "PreActBasicBlock" : "PlainPreActBasicBlock"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // The residual branch F(x) and the shortcut s(x) alone (for lesion and path analyses).
  Tensor branch(const Tensor& x);
  Tensor shortcut(const Tensor& x);

 private:
  Tensor branch_from_preact(const Tensor& a);
  BlockOptions o_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  nn::ModulePtr dropout_, downsample_;
};

class PreActBottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  // Throws when o.dropout != 0 (no reference defines where it would go).
  explicit PreActBottleneck(const BlockOptions& o);
  std::string type_name() const override { return o_.residual ? "PreActBottleneck" : "PlainPreActBottleneck"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  Tensor branch(const Tensor& x);
  Tensor shortcut(const Tensor& x);

 private:
  Tensor branch_from_preact(const Tensor& a);
  BlockOptions o_;
  std::shared_ptr<nn::BatchNorm> bn1_, bn2_, bn3_;
  std::shared_ptr<nn::Conv2d> conv1_, conv2_, conv3_;
  nn::ModulePtr downsample_;
};

// Whether a pre-activation unit's shortcut reads a (not x): with shared_preact, or when the
// shortcut is a projection (it has parameters), as in every reference implementation. The forward
// and the ONNX form (onnx_blocks.cpp) both decide with this.
bool preact_shortcut_reads_a(const BlockOptions& o, const nn::ModulePtr& downsample);

}  // namespace resin::blocks
