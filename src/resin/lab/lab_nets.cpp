#include "resin/lab/lab_nets.h"

namespace resin::lab {

namespace {
nn::ModulePtr bare_linear(int64_t in, int64_t out) {
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out, .bias = false});
}
}  // namespace

AggregatedBranch::AggregatedBranch(int64_t features, int64_t cardinality, int64_t group_width)
    : c_(cardinality), d_(group_width) {
  RESIN_CHECK(features > 0 && cardinality > 0 && group_width > 0,
              "AggregatedBranch: invalid sizes features=", features, " cardinality=", cardinality,
              " group_width=", group_width);
  for (int64_t i = 0; i < c_; ++i) {
    auto p = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
        bare_linear(features, d_), nn::BatchNorm1d({.features = d_}), nn::ReLU(), bare_linear(d_, d_),
        nn::BatchNorm1d({.features = d_}), nn::ReLU(), bare_linear(d_, features)});
    paths_.push_back(register_module("paths." + std::to_string(i), p));
  }
  bn_ = register_module("bn", nn::BatchNorm1d({.features = features}));
}

std::string AggregatedBranch::extra_repr() const { return str_cat("C=", c_, ", d=", d_); }

Tensor AggregatedBranch::forward(const Tensor& x) {
  Tensor s = paths_[0]->forward(x);
  for (size_t i = 1; i < paths_.size(); ++i) s = add(s, paths_[i]->forward(x));
  return bn_->forward(s);
}

std::shared_ptr<models::LabNet> make_resnext_mlp(const ResNextMlpOptions& o) {
  RESIN_CHECK(o.in > 0 && o.width > 0 && o.blocks >= 0 && o.classes > 0,
              "make_resnext_mlp: invalid sizes in=", o.in, " width=", o.width, " blocks=", o.blocks,
              " classes=", o.classes);
  auto stem = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = o.in, .out = o.width, .bias = false}),
      nn::BatchNorm1d({.features = o.width}), nn::ReLU()});
  auto stack = std::make_shared<nn::Sequential>();
  for (int64_t b = 0; b < o.blocks; ++b)
    stack->push_back(std::make_shared<blocks::Residual>(
        std::make_shared<AggregatedBranch>(o.width, o.cardinality, o.group_width),
        blocks::ResidualOptions{
            .in = o.width, .out = o.width, .layer = blocks::Layer::linear, .post = blocks::Post::relu}));
  return std::make_shared<models::LabNet>(
      str_cat("ResNeXtMLP(", o.width, ", ", o.blocks, ", ", o.cardinality, "x", o.group_width, "d)"), stem,
      stack, nullptr, std::make_shared<nn::Linear>(nn::LinearOptions{.in = o.width, .out = o.classes}));
}

}  // namespace resin::lab
