// ONNX forms (export_onnx) of attention, Transformer layers and stacks, and token/patch/row
// embeddings. Sequence lengths are static (taken from the example input); the batch dim stays
// symbolic. Masks are not exported: the stacks export their unmasked forward.
#include <cmath>

#include "resin/blocks/embedding.h"
#include "resin/blocks/param.h"
#include "resin/blocks/transformer.h"
#include "resin/nn/onnx_layers.h"

namespace resin::blocks {

using nn::OnnxEmitter;
using nn::OnnxValue;
namespace emit = nn::emit;

OnnxValue MultiheadAttention::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  const int64_t E = o_.dim, H = o_.heads, Dh = E / H;
  RESIN_CHECK(x.dim() == 3 && x.shape()[2] == E, "MultiheadAttention: expected [N, T, ", E, "], got ",
              x.shape());
  // Self-attention: one projection to [N, T, 3E], split into Q, K, V.
  OnnxValue qkv = emit::linear(g, x, own_param(*this, "in_proj_weight"), own_param(*this, "in_proj_bias"));
  auto parts = g.op("Split", {qkv, g.ints({E, E, E})}, {{"axis", int64_t{2}}}, 3);
  auto heads = [&](const OnnxValue& v, std::vector<int64_t> perm) {
    return emit::transpose(g, emit::reshape(g, v, {0, 0, H, Dh}), perm);
  };
  OnnxValue q = emit::mul(g, heads(parts[0], {0, 2, 1, 3}), 1.0 / std::sqrt(static_cast<double>(Dh)));
  OnnxValue kt = heads(parts[1], {0, 2, 3, 1});  // [N, H, Dh, T]
  OnnxValue v = heads(parts[2], {0, 2, 1, 3});
  OnnxValue attn = g.op1("Softmax", {g.op1("MatMul", {q, kt})}, {{"axis", int64_t{-1}}});
  OnnxValue out = emit::transpose(g, g.op1("MatMul", {attn, v}), {0, 2, 1, 3});
  return g.module(*out_proj_, emit::reshape(g, out, {0, 0, E}));
}

OnnxValue FeedForward::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = g.module(*children()[0].second, x);
  h = activate(g, h, act_);
  return g.module(*children()[1].second, h);
}

OnnxValue TransformerEncoderLayer::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 3 && x.shape()[2] == o_.dim, "TransformerEncoderLayer: expected [N, T, ", o_.dim,
              "], got ", x.shape());
  // add_norm (transformer.cpp) by placement; dropout and drop-path are the identity in eval mode.
  auto sublayer = [&](size_t i, const OnnxValue& in, const std::function<OnnxValue(const OnnxValue&)>& f) {
    const OnnxValue a = scales_[i] == 1.0 ? in : emit::mul(g, in, scales_[i]);
    switch (o_.placement) {
      case Placement::post: return g.module(*norms_[i], emit::add(g, a, f(in)));
      case Placement::pre: return emit::add(g, a, f(g.module(*norms_[i], in)));
      case Placement::peri: return emit::add(g, a, g.module(*out_norms_[i], f(g.module(*norms_[i], in))));
      case Placement::rezero:
        return emit::add(g, a, emit::mul(g, f(in), g.param(own_param(*this, "alpha" + std::to_string(i + 1)))));
    }
    return in;
  };
  OnnxValue h = sublayer(0, x, [&](const OnnxValue& z) { return g.module(*self_attn_, z); });
  return sublayer(1, h, [&](const OnnxValue& z) {
    OnnxValue u = g.module(*linear1_, z);
    u = activate(g, u, o_.activation);
    return g.module(*linear2_, u);
  });
}

OnnxValue TransformerEncoder::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = x;
  for (auto& l : layers_) h = g.module(*l, h);
  return norm_ ? g.module(*norm_, h) : h;
}

OnnxValue TokenEmbedding::export_onnx(OnnxEmitter& g, const OnnxValue& idx) {
  RESIN_CHECK(idx.dim() == 2 && idx.shape()[1] <= max_len_, "TokenEmbedding: expected indices [N, T] with T <= ",
              max_len_, ", got ", idx.shape());
  OnnxValue pos = emit::slice(g, g.param(own_param(*this, "pos")), 0, 0, idx.shape()[1]);
  return emit::add(g, g.module(*token_, idx), pos);
}

OnnxValue PatchEmbedding::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4 && x.shape()[1] == o_.in_channels && x.shape()[2] == o_.image_size &&
                  x.shape()[3] == o_.image_size,
              "PatchEmbedding: expected [N, ", o_.in_channels, ", ", o_.image_size, ", ", o_.image_size, "], got ",
              x.shape());
  OnnxValue t = emit::transpose(g, emit::reshape(g, g.module(*proj_, x), {0, o_.dim, -1}), {0, 2, 1});
  if (o_.cls_token) {
    // The [CLS] token broadcast to the (symbolic) batch: Expand to [N, 1, dim].
    OnnxValue n = g.op1("Shape", {x}, {{"start", int64_t{0}}, {"end", int64_t{1}}});
    OnnxValue shape = g.op1("Concat", {n, g.ints({1, o_.dim})}, {{"axis", int64_t{0}}});
    OnnxValue cls = g.op1("Expand", {g.param(own_param(*this, "cls_token")), shape});
    t = emit::concat(g, {cls, t}, 1);
  }
  return emit::add(g, t, g.param(own_param(*this, "pos_embed")));
}

OnnxValue RowEmbedding::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4 && x.shape()[1] == c_ && x.shape()[2] == h_ && x.shape()[3] == w_,
              "RowEmbedding: expected [N, ", c_, ", ", h_, ", ", w_, "], got ", x.shape());
  OnnxValue rows = emit::reshape(g, emit::transpose(g, x, {0, 2, 1, 3}), {0, h_, c_ * w_});
  return emit::add(g, g.module(*proj_, rows), g.param(own_param(*this, "pos")));
}

OnnxValue ClassifierHead::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 3, "ClassifierHead: expected [N, T, dim], got ", x.shape());
  OnnxValue h = pool_ == Pool::cls
                    ? g.op1("Gather", {x, g.constant(scalar_tensor(0, {.dtype = DType::i64}))}, {{"axis", int64_t{1}}})
                    : emit::mean(g, x, {1}, false);
  if (norm_) h = g.module(*norm_, h);
  return g.module(*fc_, h);
}

}  // namespace resin::blocks
