#include "resin/blocks/dense_blocks.h"

namespace resin::blocks {

Tensor NamedSequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& [_, m] : children()) h = m->forward(h);
  return h;
}

namespace {
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t kernel) {
  return std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = in, .out = out, .kernel = kernel, .padding = kernel / 2, .bias = false});
}
}  // namespace

DenseLayer::DenseLayer(const DenseLayerOptions& o) : o_(o) {
  RESIN_CHECK(o.in > 0 && o.growth > 0 && o.bn_size >= 0, "DenseLayer: invalid in=", o.in, " growth=", o.growth,
              " bn_size=", o.bn_size);
  RESIN_CHECK(o.drop_rate >= 0 && o.drop_rate < 1, "DenseLayer: drop_rate must be in [0, 1), got ", o.drop_rate);
  norm1_ = register_module("norm1", nn::BatchNorm2d({.features = o.in}));
  if (o.bn_size > 0) {
    const int64_t width = o.bn_size * o.growth;
    conv1_ = register_module("conv1", conv(o.in, width, 1));
    norm2_ = register_module("norm2", nn::BatchNorm2d({.features = width}));
    conv2_ = register_module("conv2", conv(width, o.growth, 3));
  } else {
    conv1_ = register_module("conv1", conv(o.in, o.growth, 3));
  }
}

Tensor DenseLayer::drop(const Tensor& x) const {
  return o_.drop_rate > 0 ? dropout(x, o_.drop_rate, is_training()) : x;
}

Tensor DenseLayer::forward(const Tensor& x) {
  Tensor h = conv1_->forward(relu(norm1_->forward(x)));
  if (!conv2_) return drop(h);
  if (o_.drop_after_every_conv) h = drop(h);
  return drop(conv2_->forward(relu(norm2_->forward(h))));
}

DenseBlock::DenseBlock(int64_t num_layers, const DenseLayerOptions& o) : out_(o.in) {
  RESIN_CHECK(num_layers > 0, "DenseBlock: expected at least one layer, got ", num_layers);
  for (int64_t i = 0; i < num_layers; ++i) {
    DenseLayerOptions li = o;
    li.in = out_;
    layers_.push_back(register_module("denselayer" + std::to_string(i + 1), std::make_shared<DenseLayer>(li)));
    out_ += o.growth;
  }
}

Tensor DenseBlock::forward(const Tensor& x) {
  // Every layer reads the concatenation of all earlier outputs (torchvision's plain, not
  // memory-efficient, variant: each concat is a fresh tensor).
  std::vector<Tensor> features{x};
  for (auto& layer : layers_) features.push_back(layer->forward(features.size() == 1 ? x : concat(features, 1)));
  return concat(features, 1);
}

Transition::Transition(int64_t in, int64_t out, double drop_rate) : drop_rate_(drop_rate) {
  RESIN_CHECK(in > 0 && out > 0, "Transition: invalid in=", in, " out=", out);
  norm_ = register_module("norm", nn::BatchNorm2d({.features = in}));
  conv_ = register_module("conv", conv(in, out, 1));
}

Tensor Transition::forward(const Tensor& x) {
  Tensor h = conv_->forward(relu(norm_->forward(x)));
  if (drop_rate_ > 0) h = dropout(h, drop_rate_, is_training());
  return avg_pool2d(h, {.kernel = {2, 2}, .stride = {2, 2}});
}

}  // namespace resin::blocks
