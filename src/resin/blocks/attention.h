// Multi-head scaled dot-product attention (Vaswani et al. 2017), with torch.nn.MultiheadAttention's
// parameter names and batch_first layout, so weights move to and from PyTorch unchanged:
//
//   Q = q W_qᵀ + b_q,  K = k W_kᵀ + b_k,  V = v W_vᵀ + b_v     ([W_q; W_k; W_v] = in_proj_weight [3E, E])
//   head_h = softmax( Q_h K_hᵀ / √(E/H) + mask ) V_h            (per head h, E/H features each)
//   out = concat_h(head_h) W_oᵀ + b_o                             (out_proj)
//
// Shapes: q [N, T, E], k and v [N, S, E] → out [N, T, E]. Masks (any dtype; non-zero = blocked,
// as torch's boolean masks): attn_mask [T, S] or [N·H, T, S], key_padding_mask [N, S]; causal adds
// the mask j > i (T == S). A row with every key blocked gives NaN, as in torch.
// Saved for backward: the ops' own saves (softmax output, projections).
#pragma once
#include "resin/nn/layers.h"

namespace resin::blocks {

struct AttentionMask {
  Tensor attn_mask = {};    // [T, S] or [N*H, T, S]; non-zero = may not attend
  Tensor key_padding_mask = {};  // [N, S]; non-zero = padding key
  bool causal = false;      // block keys after the query position
};

// [T, S] with 1 where key j > query i (f32), the mask torch.nn.Transformer.generate_square_subsequent_mask
// expresses with -inf.
Tensor causal_mask(int64_t t, int64_t s);

struct MultiheadAttentionOptions {
  int64_t dim = 0, heads = 1;
  double dropout = 0.0;  // on the attention weights, in training
  bool bias = true;
};

// Parameters: in_proj_weight [3E, E] (Xavier-uniform), in_proj_bias [3E] (0); child out_proj
// (Linear E → E, bias 0), as torch.
class MultiheadAttention : public nn::Module {
 public:
  explicit MultiheadAttention(const MultiheadAttentionOptions& o);
  std::string type_name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override { return forward(x, x, x); }  // self-attention, no mask
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // weights: when non-null, receives the attention weights averaged over heads, [N, T, S].
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask = {},
                 Tensor* weights = nullptr);
  const MultiheadAttentionOptions& options() const { return o_; }

 private:
  MultiheadAttentionOptions o_;
  std::shared_ptr<nn::Linear> out_proj_;
};

}  // namespace resin::blocks
