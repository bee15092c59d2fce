#include "resin/blocks/resnet_blocks.h"

#include "resin/nn/init.h"

namespace resin::blocks {

Tensor ZeroPadShortcut::forward(const Tensor& x) {
  Tensor s = stride_ == 1 ? x : x.slice(2, 0, x.size(2), stride_).slice(3, 0, x.size(3), stride_);
  if (out_ == in_) return s;
  // Split the new channels evenly before and after, as the common CIFAR implementations do.
  const int64_t extra = out_ - in_, lo = extra / 2, hi = extra - lo;
  return pad(s, {0, 0, 0, 0, lo, hi});
}

nn::ModulePtr make_shortcut(const BlockOptions& o, int64_t out, bool projection_bn) {
  if (!o.residual || (o.stride == 1 && o.in == out)) return nullptr;
  if (o.shortcut == ShortcutKind::zero_pad) {
    RESIN_CHECK(out >= o.in, "option-A shortcut: cannot shrink channels ", o.in, " -> ", out);
    return std::make_shared<ZeroPadShortcut>(o.in, out, o.stride);
  }
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = o.in, .out = out, .kernel = 1, .stride = o.stride, .bias = false}));
  if (projection_bn) seq->push_back(nn::BatchNorm2d({.features = out}));
  return seq;
}

namespace {
void check_post_activation(const BlockOptions& o, const char* name) {
  RESIN_CHECK(o.dropout == 0.0 && !o.shared_preact, name, ": dropout and shared_preact are pre-activation options "
              "(use preact_blocks.h), got dropout=", o.dropout, " shared_preact=", o.shared_preact);
}
}  // namespace

BasicBlock::BasicBlock(const BlockOptions& o) : o_(o) {
  check_post_activation(o, "BasicBlock");
  RESIN_CHECK(o.groups == 1 && o.base_width == 64, "BasicBlock: only groups=1 and base_width=64 are defined "
              "(use Bottleneck for ResNeXt / Wide ResNet), got groups=", o.groups, " base_width=", o.base_width);
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = o.in, .out = o.planes, .kernel = 3, .stride = o.stride, .padding = 1, .bias = false}));
  bn1_ = register_module("bn1", nn::BatchNorm2d({.features = o.planes}));
  conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = o.planes, .out = o.planes, .kernel = 3, .padding = 1, .bias = false}));
  bn2_ = register_module("bn2", nn::BatchNorm2d({.features = o.planes}));
  if ((downsample_ = make_shortcut(o, o.planes))) register_module("downsample", downsample_);
  if (o.zero_init_last_bn) nn::init::constant_(bn2_->own_parameters()[0].second, 0.0);
}

Tensor BasicBlock::branch(const Tensor& x) {
  return bn2_->forward(conv2_->forward(bn1_->forward_relu(conv1_->forward(x))));
}
Tensor BasicBlock::shortcut(const Tensor& x) { return downsample_ ? downsample_->forward(x) : x; }

Tensor BasicBlock::forward(const Tensor& x) {
  if (!o_.residual) return bn2_->forward_relu(conv2_->forward(bn1_->forward_relu(conv1_->forward(x))));
  Tensor f = branch(x);
  return add_relu(f, shortcut(x));
}

Bottleneck::Bottleneck(const BlockOptions& o) : o_(o) {
  check_post_activation(o, "Bottleneck");
  const int64_t width = o.planes * o.base_width / 64 * o.groups, out = o.planes * kExpansion;
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = o.in, .out = width, .kernel = 1, .bias = false}));
  bn1_ = register_module("bn1", nn::BatchNorm2d({.features = width}));
  conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = width, .out = width, .kernel = 3, .stride = o.stride, .padding = 1, .groups = o.groups, .bias = false}));
  bn2_ = register_module("bn2", nn::BatchNorm2d({.features = width}));
  conv3_ = register_module("conv3", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = width, .out = out, .kernel = 1, .bias = false}));
  bn3_ = register_module("bn3", nn::BatchNorm2d({.features = out}));
  if ((downsample_ = make_shortcut(o, out))) register_module("downsample", downsample_);
  if (o.zero_init_last_bn) nn::init::constant_(bn3_->own_parameters()[0].second, 0.0);
}

Tensor Bottleneck::branch(const Tensor& x) {
  Tensor h = bn1_->forward_relu(conv1_->forward(x));
  h = bn2_->forward_relu(conv2_->forward(h));
  return bn3_->forward(conv3_->forward(h));
}
Tensor Bottleneck::shortcut(const Tensor& x) { return downsample_ ? downsample_->forward(x) : x; }

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor f = branch(x);
  return o_.residual ? add_relu(f, shortcut(x)) : relu(f);
}

}  // namespace resin::blocks
