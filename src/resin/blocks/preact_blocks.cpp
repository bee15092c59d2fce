#include "resin/blocks/preact_blocks.h"

namespace resin::blocks {

namespace {

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1) {
  return std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
      .in = in, .out = out, .kernel = kernel, .stride = stride, .padding = kernel / 2, .groups = groups, .bias = false});
}

// x is the block's input, a = relu(bn1(x)).
Tensor preact_shortcut(const BlockOptions& o, const nn::ModulePtr& downsample, const Tensor& x, const Tensor& a) {
  const Tensor& in = preact_shortcut_reads_a(o, downsample) ? a : x;
  return downsample ? downsample->forward(in) : in;
}

}  // namespace

bool preact_shortcut_reads_a(const BlockOptions& o, const nn::ModulePtr& downsample) {
  return o.shared_preact || (downsample && !downsample->named_parameters().empty());
}

PreActBasicBlock::PreActBasicBlock(const BlockOptions& o) : o_(o) {
  RESIN_CHECK(o.groups == 1 && o.base_width == 64, "PreActBasicBlock: only groups=1 and base_width=64 are defined, got "
              "groups=", o.groups, " base_width=", o.base_width);
  RESIN_CHECK(o.in > 0 && o.planes > 0 && o.stride > 0, "PreActBasicBlock: invalid in=", o.in, " planes=", o.planes,
              " stride=", o.stride);
  bn1_ = register_module("bn1", nn::BatchNorm2d({.features = o.in}));
  conv1_ = register_module("conv1", conv(o.in, o.planes, 3, o.stride));
  bn2_ = register_module("bn2", nn::BatchNorm2d({.features = o.planes}));
  if (o.dropout > 0) dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout));
  conv2_ = register_module("conv2", conv(o.planes, o.planes, 3));
  if ((downsample_ = make_shortcut(o, o.planes, /*projection_bn=*/false))) register_module("downsample", downsample_);
}

Tensor PreActBasicBlock::branch_from_preact(const Tensor& a) {
  Tensor h = relu(bn2_->forward(conv1_->forward(a)));
  if (dropout_) h = dropout_->forward(h);
  return conv2_->forward(h);
}

Tensor PreActBasicBlock::branch(const Tensor& x) { return branch_from_preact(relu(bn1_->forward(x))); }
Tensor PreActBasicBlock::shortcut(const Tensor& x) { return preact_shortcut(o_, downsample_, x, relu(bn1_->forward(x))); }

Tensor PreActBasicBlock::forward(const Tensor& x) {
  Tensor a = relu(bn1_->forward(x));
  Tensor f = branch_from_preact(a);
  return o_.residual ? add(f, preact_shortcut(o_, downsample_, x, a)) : f;
}

PreActBottleneck::PreActBottleneck(const BlockOptions& o) : o_(o) {
  RESIN_CHECK(o.dropout == 0.0, "PreActBottleneck: dropout is defined for basic pre-activation blocks only, got ",
              o.dropout);
  RESIN_CHECK(o.in > 0 && o.planes > 0 && o.stride > 0 && o.groups > 0 && o.base_width > 0,
              "PreActBottleneck: invalid in=", o.in, " planes=", o.planes, " stride=", o.stride, " groups=", o.groups,
              " base_width=", o.base_width);
  const int64_t width = o.planes * o.base_width / 64 * o.groups, out = o.planes * kExpansion;
  bn1_ = register_module("bn1", nn::BatchNorm2d({.features = o.in}));
  conv1_ = register_module("conv1", conv(o.in, width, 1, o.stride));
  bn2_ = register_module("bn2", nn::BatchNorm2d({.features = width}));
  conv2_ = register_module("conv2", conv(width, width, 3, 1, o.groups));
  bn3_ = register_module("bn3", nn::BatchNorm2d({.features = width}));
  conv3_ = register_module("conv3", conv(width, out, 1));
  if ((downsample_ = make_shortcut(o, out, /*projection_bn=*/false))) register_module("downsample", downsample_);
}

Tensor PreActBottleneck::branch_from_preact(const Tensor& a) {
  Tensor h = relu(bn2_->forward(conv1_->forward(a)));
  h = relu(bn3_->forward(conv2_->forward(h)));
  return conv3_->forward(h);
}

Tensor PreActBottleneck::branch(const Tensor& x) { return branch_from_preact(relu(bn1_->forward(x))); }
Tensor PreActBottleneck::shortcut(const Tensor& x) { return preact_shortcut(o_, downsample_, x, relu(bn1_->forward(x))); }

Tensor PreActBottleneck::forward(const Tensor& x) {
  Tensor a = relu(bn1_->forward(x));
  Tensor f = branch_from_preact(a);
  return o_.residual ? add(f, preact_shortcut(o_, downsample_, x, a)) : f;
}

}  // namespace resin::blocks
