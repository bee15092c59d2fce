// Transformer layers with the normalisation placed by formula. Each layer is a sequence of
// sublayers F (self-attention, cross-attention, the position-wise FFN), each combined with the
// residual stream x by `add_norm`:
//
//   Placement::post    x ← LN(a·x + F(x))              Vaswani et al. 2017; torch norm_first=False
//   Placement::pre     x ← a·x + F(LN(x))              Xiong et al. 2020; torch norm_first=True
//                                                      (the stack ends with a final LN)
//   Placement::peri    x ← a·x + LN'(F(LN(x)))         Kim et al. 2025 (final LN as for pre)
//   Placement::rezero  x ← a·x + α·F(x), α = 0 at init, no LN   (Bachlechner et al. 2020)
//
// a is the sublayer's shortcut scale (1; the attenuated identity of arXiv 2404.10947 sets it by
// attenuation_schedule), and F's output passes through drop-path in training when set.
//
// Parameter names are torch.nn.TransformerEncoderLayer's / TransformerDecoderLayer's (self_attn,
// multihead_attn, linear1, linear2, norm1..3), so state dicts move between the two unchanged for
// post and pre. Peri adds out_norm1..3 (LN'), ReZero adds alpha1..3 and has no norms.
// Activations are batch_first: [N, T, E].
#pragma once
#include <functional>

#include "resin/blocks/attention.h"
#include "resin/blocks/units.h"

namespace resin::blocks {

enum class Placement { post, pre, peri, rezero };
const char* placement_name(Placement p);
Placement parse_norm_placement(const std::string& name);  // "post" | "pre" | "peri" | "rezero"

struct SublayerNorms {
  nn::Module* in = nullptr;   // LN: the post-LN norm for post, the input norm for pre and peri
  nn::Module* out = nullptr;  // LN' (peri only)
  Tensor alpha = {};          // α (rezero only)
};
// One residual sublayer: x ← combine(x, F) by placement (formulas above).
Tensor add_norm(Placement p, const Tensor& x, const std::function<Tensor(const Tensor&)>& f,
                const SublayerNorms& n, double shortcut_scale = 1.0, double drop_path_p = 0.0,
                bool training = false);

struct TransformerLayerOptions {
  int64_t dim = 0, heads = 1, ff = 0;  // ff: hidden width of the FFN (0: 4·dim)
  double dropout = 0.0;                // torch's dropout, dropout1..3 and attention dropout
  Activation activation = Activation::relu;
  Placement placement = Placement::post;
  double eps = 1e-5;  // LayerNorm epsilon
};

// Position-wise FFN: linear2(dropout(act(linear1(x)))), E → ff → E. Children linear1, linear2.
class FeedForward : public nn::Module {
 public:
  FeedForward(int64_t dim, int64_t ff, Activation act, double dropout);
  std::string type_name() const override { return "FeedForward"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  Activation act_;
  double dropout_;
};

// The sublayer machinery shared by encoder and decoder layers.
class TransformerLayerBase : public nn::Module {
 public:
  // a_i for sublayer i (0-based) and the drop-path probability of every sublayer in this layer.
  void set_shortcut_scale(size_t sublayer, double a);
  void set_drop_path(double p);
  const TransformerLayerOptions& options() const { return o_; }
  size_t num_sublayers() const { return scales_.size(); }

 protected:
  TransformerLayerBase(const TransformerLayerOptions& o, size_t sublayers);
  Tensor sublayer(size_t i, const Tensor& x, const std::function<Tensor(const Tensor&)>& f);
  Tensor ffn(const Tensor& x);
  TransformerLayerOptions o_;
  std::vector<nn::ModulePtr> norms_, out_norms_;
  std::vector<double> scales_;
  double drop_path_ = 0.0;
  std::shared_ptr<nn::Linear> linear1_, linear2_;
};

// Sublayers: self-attention, FFN.
class TransformerEncoderLayer : public TransformerLayerBase {
 public:
  explicit TransformerEncoderLayer(const TransformerLayerOptions& o);
  std::string type_name() const override { return "TransformerEncoderLayer"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override { return forward(x, AttentionMask{}); }
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  Tensor forward(const Tensor& x, const AttentionMask& mask);

 private:
  std::shared_ptr<MultiheadAttention> self_attn_;
};

// Sublayers: masked self-attention on tgt, cross-attention to memory, FFN.
class TransformerDecoderLayer : public TransformerLayerBase {
 public:
  explicit TransformerDecoderLayer(const TransformerLayerOptions& o);
  std::string type_name() const override { return "TransformerDecoderLayer"; }
  std::string extra_repr() const override;
  // Throws: a decoder layer needs memory.
  Tensor forward(const Tensor& x) override;
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {});

 private:
  std::shared_ptr<MultiheadAttention> self_attn_, cross_attn_;
};

struct TransformerStackOptions {
  TransformerLayerOptions layer = {};
  int64_t layers = 1;
  // The final LN after the last layer; by default present for pre and peri, absent for post/rezero.
  enum class FinalNorm { auto_, on, off } final_norm = FinalNorm::auto_;
  double alpha_min = 1.0;      // attenuated identity over all 2·layers (encoder) sublayers; 1 = off
  double drop_path_max = 0.0;  // stochastic depth, linear over layers (linear_drop_path)
};

// Children layers.0 .. layers.{L-1}, and norm (the final LN) when present: the names of
// torch.nn.TransformerEncoder / TransformerDecoder.
class TransformerEncoder : public nn::Module {
 public:
  explicit TransformerEncoder(const TransformerStackOptions& o);
  std::string type_name() const override { return "TransformerEncoder"; }
  Tensor forward(const Tensor& x) override { return forward(x, AttentionMask{}); }
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  Tensor forward(const Tensor& x, const AttentionMask& mask);
  TransformerEncoderLayer& layer(size_t i) { return *layers_[i]; }
  size_t size() const { return layers_.size(); }

 private:
  std::vector<std::shared_ptr<TransformerEncoderLayer>> layers_;
  nn::ModulePtr norm_;
};

class TransformerDecoder : public nn::Module {
 public:
  explicit TransformerDecoder(const TransformerStackOptions& o);
  std::string type_name() const override { return "TransformerDecoder"; }
  Tensor forward(const Tensor& x) override;  // throws: needs memory
  Tensor forward(const Tensor& tgt, const Tensor& memory, const AttentionMask& tgt_mask = {},
                 const AttentionMask& memory_mask = {});
  TransformerDecoderLayer& layer(size_t i) { return *layers_[i]; }

 private:
  std::vector<std::shared_ptr<TransformerDecoderLayer>> layers_;
  nn::ModulePtr norm_;
};

}  // namespace resin::blocks
