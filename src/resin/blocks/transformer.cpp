#include "resin/blocks/transformer.h"

#include "resin/blocks/param.h"

namespace resin::blocks {

const char* placement_name(Placement p) {
  switch (p) {
    case Placement::post: return "post";
    case Placement::pre: return "pre";
    case Placement::peri: return "peri";
    case Placement::rezero: return "rezero";
  }
  return "?";
}

Placement parse_norm_placement(const std::string& name) {
  for (auto p : {Placement::post, Placement::pre, Placement::peri, Placement::rezero})
    if (name == placement_name(p)) return p;
  RESIN_FAIL("unknown norm placement '", name, "'; expected post, pre, peri or rezero");
}

Tensor add_norm(Placement p, const Tensor& x, const std::function<Tensor(const Tensor&)>& f,
                const SublayerNorms& n, double shortcut_scale, double drop_path_p, bool training) {
  const Tensor a = shortcut_scale == 1.0 ? x : mul(x, shortcut_scale);
  switch (p) {
    case Placement::post:
      RESIN_CHECK(n.in, "add_norm(post): no LayerNorm given");
      return n.in->forward(add(a, drop_path(f(x), drop_path_p, training)));
    case Placement::pre:
      RESIN_CHECK(n.in, "add_norm(pre): no LayerNorm given");
      return add(a, drop_path(f(n.in->forward(x)), drop_path_p, training));
    case Placement::peri:
      RESIN_CHECK(n.in && n.out, "add_norm(peri): needs the input and the output LayerNorm");
      return add(a, drop_path(n.out->forward(f(n.in->forward(x))), drop_path_p, training));
    case Placement::rezero:
      RESIN_CHECK(n.alpha.defined(), "add_norm(rezero): no α given");
      return add(a, drop_path(mul(f(x), n.alpha), drop_path_p, training));
  }
  return x;
}

namespace {

Tensor feed_forward(const Tensor& x, nn::Linear& l1, nn::Linear& l2, Activation act, double p,
                    bool training) {
  return l2.forward(dropout(activate(l1.forward(x), act), p, training));
}

std::shared_ptr<nn::Linear> make_linear(int64_t in, int64_t out) {
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out});
}

int64_t ff_width(const TransformerLayerOptions& o) { return o.ff > 0 ? o.ff : 4 * o.dim; }

}  // namespace

FeedForward::FeedForward(int64_t dim, int64_t ff, Activation act, double dropout)
    : act_(act), dropout_(dropout) {
  RESIN_CHECK(dim > 0 && ff > 0 && dropout >= 0 && dropout < 1, "FeedForward: invalid dim=", dim, " ff=", ff,
              " dropout=", dropout);
  register_module("linear1", make_linear(dim, ff));
  register_module("linear2", make_linear(ff, dim));
}

Tensor FeedForward::forward(const Tensor& x) {
  auto& l1 = static_cast<nn::Linear&>(*children()[0].second);
  auto& l2 = static_cast<nn::Linear&>(*children()[1].second);
  return feed_forward(x, l1, l2, act_, dropout_, is_training());
}

TransformerLayerBase::TransformerLayerBase(const TransformerLayerOptions& o, size_t sublayers)
    : o_(o), scales_(sublayers, 1.0) {
  RESIN_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "Transformer layer: dim ", o.dim,
              " must be a positive multiple of heads ", o.heads);
  RESIN_CHECK(o.dropout >= 0 && o.dropout < 1, "Transformer layer: dropout must be in [0, 1), got ",
              o.dropout);
  linear1_ = register_module("linear1", make_linear(o.dim, ff_width(o)));
  linear2_ = register_module("linear2", make_linear(ff_width(o), o.dim));
  auto ln = [&] {
    return std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {o.dim}, .eps = o.eps});
  };
  for (size_t i = 1; i <= sublayers; ++i) {
    const std::string k = std::to_string(i);
    if (o.placement == Placement::rezero) {
      register_parameter("alpha" + k, zeros(Shape{}));
      continue;
    }
    norms_.push_back(register_module("norm" + k, ln()));
    if (o.placement == Placement::peri) out_norms_.push_back(register_module("out_norm" + k, ln()));
  }
}

void TransformerLayerBase::set_shortcut_scale(size_t sublayer, double a) {
  RESIN_CHECK(sublayer < scales_.size(), "set_shortcut_scale: sublayer ", sublayer, " of ", scales_.size());
  scales_[sublayer] = a;
}

void TransformerLayerBase::set_drop_path(double p) {
  RESIN_CHECK(p >= 0 && p < 1, "set_drop_path: probability must be in [0, 1), got ", p);
  drop_path_ = p;
}

Tensor TransformerLayerBase::sublayer(size_t i, const Tensor& x,
                                      const std::function<Tensor(const Tensor&)>& f) {
  SublayerNorms n;
  if (!norms_.empty()) n.in = norms_[i].get();
  if (!out_norms_.empty()) n.out = out_norms_[i].get();
  if (o_.placement == Placement::rezero) n.alpha = own_param(*this, "alpha" + std::to_string(i + 1));
  // dropout1..3 of torch: on the sublayer's output, before the residual addition.
  auto g = [&](const Tensor& h) { return dropout(f(h), o_.dropout, is_training()); };
  return add_norm(o_.placement, x, g, n, scales_[i], drop_path_, is_training());
}

Tensor TransformerLayerBase::ffn(const Tensor& x) {
  return feed_forward(x, *linear1_, *linear2_, o_.activation, o_.dropout, is_training());
}

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerLayerOptions& o)
    : TransformerLayerBase(o, 2) {
  self_attn_ = register_module("self_attn", std::make_shared<MultiheadAttention>(MultiheadAttentionOptions{
                                                .dim = o.dim, .heads = o.heads, .dropout = o.dropout}));
}

std::string TransformerEncoderLayer::extra_repr() const {
  return str_cat("dim=", o_.dim, ", heads=", o_.heads, ", ff=", ff_width(o_), ", ",
                 placement_name(o_.placement), "-LN");
}

Tensor TransformerEncoderLayer::forward(const Tensor& x, const AttentionMask& mask) {
  RESIN_CHECK(x.dim() == 3 && x.size(2) == o_.dim, "TransformerEncoderLayer: expected [N, T, ", o_.dim,
              "], got ", x.shape());
  Tensor h = sublayer(0, x, [&](const Tensor& z) { return self_attn_->forward(z, z, z, mask); });
  return sublayer(1, h, [&](const Tensor& z) { return ffn(z); });
}

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerLayerOptions& o)
    : TransformerLayerBase(o, 3) {
  const MultiheadAttentionOptions mo{.dim = o.dim, .heads = o.heads, .dropout = o.dropout};
  self_attn_ = register_module("self_attn", std::make_shared<MultiheadAttention>(mo));
  cross_attn_ = register_module("multihead_attn", std::make_shared<MultiheadAttention>(mo));
}

std::string TransformerDecoderLayer::extra_repr() const {
  return str_cat("dim=", o_.dim, ", heads=", o_.heads, ", ff=", ff_width(o_), ", ",
                 placement_name(o_.placement), "-LN");
}

Tensor TransformerDecoderLayer::forward(const Tensor&) {
  RESIN_FAIL("TransformerDecoderLayer: call forward(tgt, memory, tgt_mask, memory_mask)");
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const AttentionMask& tgt_mask, const AttentionMask& memory_mask) {
  RESIN_CHECK(tgt.dim() == 3 && tgt.size(2) == o_.dim && memory.dim() == 3 && memory.size(2) == o_.dim,
              "TransformerDecoderLayer: expected tgt [N, T, ", o_.dim, "] and memory [N, S, ", o_.dim,
              "], got ", tgt.shape(), " and ", memory.shape());
  Tensor h = sublayer(0, tgt, [&](const Tensor& z) { return self_attn_->forward(z, z, z, tgt_mask); });
  h = sublayer(1, h, [&](const Tensor& z) { return cross_attn_->forward(z, memory, memory, memory_mask); });
  return sublayer(2, h, [&](const Tensor& z) { return ffn(z); });
}

namespace {

bool has_final_norm(const TransformerStackOptions& o) {
  using F = TransformerStackOptions::FinalNorm;
  if (o.final_norm != F::auto_) return o.final_norm == F::on;
  return o.layer.placement == Placement::pre || o.layer.placement == Placement::peri;
}

template <class Layer>
void configure(std::vector<std::shared_ptr<Layer>>& layers, const TransformerStackOptions& o) {
  if (layers.empty()) return;
  const size_t per = layers[0]->num_sublayers();
  const auto alphas = attenuation_schedule(static_cast<int64_t>(per * layers.size()), o.alpha_min);
  const auto drops = linear_drop_path(static_cast<int64_t>(layers.size()), o.drop_path_max);
  for (size_t l = 0; l < layers.size(); ++l) {
    for (size_t s = 0; s < per; ++s) layers[l]->set_shortcut_scale(s, alphas[l * per + s]);
    layers[l]->set_drop_path(drops[l]);
  }
}

}  // namespace

TransformerEncoder::TransformerEncoder(const TransformerStackOptions& o) {
  RESIN_CHECK(o.layers > 0, "TransformerEncoder: needs at least one layer, got ", o.layers);
  auto seq = register_module("layers", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < o.layers; ++i) {
    layers_.push_back(std::make_shared<TransformerEncoderLayer>(o.layer));
    seq->push_back(layers_.back());
  }
  configure(layers_, o);
  if (has_final_norm(o))
    norm_ = register_module("norm", std::make_shared<nn::LayerNorm>(
                                        nn::LayerNormOptions{.shape = {o.layer.dim}, .eps = o.layer.eps}));
}

Tensor TransformerEncoder::forward(const Tensor& x, const AttentionMask& mask) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(h, mask);
  return norm_ ? norm_->forward(h) : h;
}

TransformerDecoder::TransformerDecoder(const TransformerStackOptions& o) {
  RESIN_CHECK(o.layers > 0, "TransformerDecoder: needs at least one layer, got ", o.layers);
  auto seq = register_module("layers", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < o.layers; ++i) {
    layers_.push_back(std::make_shared<TransformerDecoderLayer>(o.layer));
    seq->push_back(layers_.back());
  }
  configure(layers_, o);
  if (has_final_norm(o))
    norm_ = register_module("norm", std::make_shared<nn::LayerNorm>(
                                        nn::LayerNormOptions{.shape = {o.layer.dim}, .eps = o.layer.eps}));
}

Tensor TransformerDecoder::forward(const Tensor&) {
  RESIN_FAIL("TransformerDecoder: call forward(tgt, memory, tgt_mask, memory_mask)");
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask,
                                   const AttentionMask& memory_mask) {
  Tensor h = tgt;
  for (auto& l : layers_) h = l->forward(h, memory, tgt_mask, memory_mask);
  return norm_ ? norm_->forward(h) : h;
}

}  // namespace resin::blocks
