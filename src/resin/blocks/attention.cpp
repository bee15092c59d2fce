#include "resin/blocks/attention.h"

#include <cmath>
#include <limits>

#include "resin/blocks/param.h"
#include "resin/nn/init.h"

namespace resin::blocks {

Tensor causal_mask(int64_t t, int64_t s) {
  RESIN_CHECK(t > 0 && s > 0, "causal_mask: sizes must be positive, got ", t, "x", s);
  Tensor i = arange(0, static_cast<double>(t)).reshape({t, 1});
  Tensor j = arange(0, static_cast<double>(s)).reshape({1, s});
  return gt(j, i);
}

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& o) : o_(o) {
  RESIN_CHECK(o.dim > 0 && o.heads > 0 && o.dim % o.heads == 0, "MultiheadAttention: dim ", o.dim,
              " must be a positive multiple of heads ", o.heads);
  RESIN_CHECK(o.dropout >= 0 && o.dropout < 1, "MultiheadAttention: dropout must be in [0, 1), got ",
              o.dropout);
  nn::init::xavier_uniform_(register_parameter("in_proj_weight", empty({3 * o.dim, o.dim})));
  if (o.bias) register_parameter("in_proj_bias", zeros({3 * o.dim}));
  out_proj_ = register_module(
      "out_proj", std::make_shared<nn::Linear>(nn::LinearOptions{.in = o.dim, .out = o.dim, .bias = o.bias}));
  if (o.bias) nn::init::constant_(out_proj_->own_parameters()[1].second, 0.0);
}

std::string MultiheadAttention::extra_repr() const {
  return str_cat("dim=", o_.dim, ", heads=", o_.heads,
                 o_.dropout > 0 ? str_cat(", dropout=", o_.dropout) : "");
}

Tensor MultiheadAttention::forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const AttentionMask& mask, Tensor* weights) {
  const int64_t E = o_.dim, H = o_.heads, Dh = E / H;
  RESIN_CHECK(q.defined() && k.defined() && v.defined() && q.dim() == 3 && k.dim() == 3 && v.dim() == 3,
              "MultiheadAttention: expected q, k, v of shape [N, L, E]");
  RESIN_CHECK(q.size(2) == E && k.size(2) == E && v.size(2) == E,
              "MultiheadAttention: expected feature size ", E, ", got q ", q.shape(), ", k ", k.shape(),
              ", v ", v.shape());
  const int64_t N = q.size(0), T = q.size(1), S = k.size(1);
  RESIN_CHECK(k.size(0) == N && v.size(0) == N && v.size(1) == S,
              "MultiheadAttention: batch/length mismatch, q ", q.shape(), ", k ", k.shape(), ", v ",
              v.shape());
  const Tensor in_w = own_param(*this, "in_proj_weight"), in_b = own_param(*this, "in_proj_bias");
  auto project = [&](const Tensor& x, int64_t part, int64_t len) {
    Tensor w = in_w.narrow(0, part * E, E);
    Tensor b = in_b.defined() ? in_b.narrow(0, part * E, E) : Tensor();
    return linear(x, w, b).reshape({N, len, H, Dh}).permute({0, 2, 1, 3});  // [N, H, len, Dh]
  };
  // torch scales q before the product: softmax((q/√Dh) kᵀ).
  Tensor Q = mul(project(q, 0, T), 1.0 / std::sqrt(static_cast<double>(Dh)));
  Tensor K = project(k, 1, S), V = project(v, 2, S);
  Tensor scores = matmul(Q, K.transpose(2, 3));  // [N, H, T, S]
  const double ninf = -std::numeric_limits<double>::infinity();
  if (mask.attn_mask.defined()) {
    const Tensor& m = mask.attn_mask;
    RESIN_CHECK((m.dim() == 2 && m.size(0) == T && m.size(1) == S) ||
                    (m.dim() == 3 && m.size(0) == N * H && m.size(1) == T && m.size(2) == S),
                "MultiheadAttention: attn_mask must be [", T, ", ", S, "] or [", N * H, ", ", T, ", ", S,
                "], got ", m.shape());
    scores = masked_fill(scores, m.dim() == 2 ? m : m.reshape({N, H, T, S}), ninf);
  }
  if (mask.key_padding_mask.defined()) {
    const Tensor& m = mask.key_padding_mask;
    RESIN_CHECK(m.dim() == 2 && m.size(0) == N && m.size(1) == S,
                "MultiheadAttention: key_padding_mask must be [", N, ", ", S, "], got ", m.shape());
    scores = masked_fill(scores, m.reshape({N, 1, 1, S}), ninf);
  }
  if (mask.causal) {
    RESIN_CHECK(T == S, "MultiheadAttention: a causal mask needs as many keys as queries, got ", T, " and ",
                S);
    scores = masked_fill(scores, causal_mask(T, S).to(scores.device()), ninf);
  }
  Tensor attn = softmax(scores, -1);
  if (weights) *weights = mean(attn, {1});
  attn = dropout(attn, o_.dropout, is_training());
  Tensor out = matmul(attn, V).permute({0, 2, 1, 3}).reshape({N, T, E});
  return out_proj_->forward(out);
}

}  // namespace resin::blocks
