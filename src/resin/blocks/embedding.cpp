#include "resin/blocks/embedding.h"

#include "resin/blocks/param.h"
#include "resin/nn/init.h"

namespace resin::blocks {

namespace {
Tensor position_table(const Shape& s) {
  Tensor t = empty(s);
  nn::init::normal_(t, 0.0, 0.02);
  return t;
}
}  // namespace

TokenEmbedding::TokenEmbedding(int64_t vocab, int64_t dim, int64_t max_len) : max_len_(max_len) {
  RESIN_CHECK(vocab > 0 && dim > 0 && max_len > 0, "TokenEmbedding: invalid vocab=", vocab, " dim=", dim,
              " max_len=", max_len);
  token_ = register_module("token", std::make_shared<nn::Embedding>(vocab, dim));
  register_parameter("pos", position_table({max_len, dim}));
}

Tensor TokenEmbedding::forward(const Tensor& idx) {
  RESIN_CHECK(idx.defined() && idx.dim() == 2 && idx.size(1) <= max_len_,
              "TokenEmbedding: expected indices [N, T] with T <= ", max_len_, ", got ",
              idx.defined() ? idx.shape().str() : "undefined");
  return add(token_->forward(idx), own_param(*this, "pos").narrow(0, 0, idx.size(1)));
}

PatchEmbedding::PatchEmbedding(const PatchEmbeddingOptions& o) : o_(o) {
  RESIN_CHECK(
      o.in_channels > 0 && o.dim > 0 && o.patch > 0 && o.image_size > 0 && o.image_size % o.patch == 0,
      "PatchEmbedding: image_size ", o.image_size, " must be a positive multiple of patch ", o.patch,
      " (dim=", o.dim, ", in_channels=", o.in_channels, ")");
  proj_ =
      register_module("proj", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                  .in = o.in_channels, .out = o.dim, .kernel = o.patch, .stride = o.patch}));
  if (o.cls_token) register_parameter("cls_token", position_table({1, 1, o.dim}));
  register_parameter("pos_embed", position_table({1, num_tokens(), o.dim}));
}

int64_t PatchEmbedding::num_tokens() const {
  const int64_t g = o_.image_size / o_.patch;
  return g * g + (o_.cls_token ? 1 : 0);
}

std::string PatchEmbedding::extra_repr() const {
  return str_cat("patch=", o_.patch, ", image=", o_.image_size, ", dim=", o_.dim,
                 o_.cls_token ? ", cls" : "");
}

Tensor PatchEmbedding::forward(const Tensor& x) {
  RESIN_CHECK(x.defined() && x.dim() == 4 && x.size(1) == o_.in_channels && x.size(2) == o_.image_size &&
                  x.size(3) == o_.image_size,
              "PatchEmbedding: expected [N, ", o_.in_channels, ", ", o_.image_size, ", ", o_.image_size,
              "], got ", x.defined() ? x.shape().str() : "undefined");
  const int64_t n = x.size(0);
  Tensor t = proj_->forward(x).flatten(2).transpose(1, 2);  // [N, P, dim]
  if (o_.cls_token) t = concat({own_param(*this, "cls_token").expand({n, 1, o_.dim}), t}, 1);
  return add(t, own_param(*this, "pos_embed"));
}

RowEmbedding::RowEmbedding(int64_t channels, int64_t height, int64_t width, int64_t dim)
    : c_(channels), h_(height), w_(width) {
  RESIN_CHECK(channels > 0 && height > 0 && width > 0 && dim > 0, "RowEmbedding: invalid sizes ", channels,
              "x", height, "x", width, " -> ", dim);
  proj_ = register_module(
      "proj", std::make_shared<nn::Linear>(nn::LinearOptions{.in = channels * width, .out = dim}));
  register_parameter("pos", position_table({height, dim}));
}

Tensor RowEmbedding::forward(const Tensor& x) {
  RESIN_CHECK(x.defined() && x.dim() == 4 && x.size(1) == c_ && x.size(2) == h_ && x.size(3) == w_,
              "RowEmbedding: expected [N, ", c_, ", ", h_, ", ", w_, "], got ",
              x.defined() ? x.shape().str() : "undefined");
  // [N, C, H, W] → [N, H, C, W] → [N, H, C·W]
  Tensor rows = x.permute({0, 2, 1, 3}).reshape({x.size(0), h_, c_ * w_});
  return add(proj_->forward(rows), own_param(*this, "pos"));
}

ClassifierHead::ClassifierHead(int64_t dim, int64_t classes, Pool pool, bool norm) : pool_(pool) {
  RESIN_CHECK(dim > 0 && classes > 0, "ClassifierHead: invalid dim=", dim, " classes=", classes);
  if (norm)
    norm_ = register_module("norm", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {dim}}));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(nn::LinearOptions{.in = dim, .out = classes}));
}

Tensor ClassifierHead::forward(const Tensor& x) {
  RESIN_CHECK(x.defined() && x.dim() == 3, "ClassifierHead: expected [N, T, dim], got ",
              x.defined() ? x.shape().str() : "undefined");
  Tensor h = pool_ == Pool::cls ? x.select(1, 0) : mean(x, {1});
  if (norm_) h = norm_->forward(h);
  return fc_->forward(h);
}

}  // namespace resin::blocks
