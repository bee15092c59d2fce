// The general residual combinator. Every residual variant of the survey that combines one branch
// F(x) with its input is a configuration of
//
//   y = post( a(x) · drop(h(S(x))) + b(x) · drop_path(F(x)) )
//
// where S is the shortcut (identity or a projection), h an optional shortcut modification
// (dropout), a(x), b(x) the mixing coefficients chosen by `Mix`, and post the operation after the
// addition (`Post`). Options are named by formula:
//
//   Residual(branch, {.in = 64, .out = 64, .layer = Layer::linear, .mix = Mix::learned_scale})
//     // y = x + α·F(x), α learnable, α = 0 at init (ReZero / SkipInit)
//
// Domains: Layer::conv takes [N, C, H, W] activations (shortcut projections and gates are 1×1
// convolutions with the block's stride); Layer::linear takes [..., D] (projections and gates are
// Linear layers over the last dim; stride must be 1). The branch F is any module mapping
// x [.., in] to [.., out] at the shortcut's resolution.
//
// Randomness (shortcut dropout, drop-path) draws from default_generator() and is active only in
// training mode.
#pragma once
#include <vector>

#include "resin/nn/layers.h"

namespace resin::blocks {

enum class Layer {
  conv,    // x [N, C, H, W]; projections/gates are 1×1 convs with stride `stride`
  linear,  // x [..., D];     projections/gates are Linear over the last dim
};

enum class Shortcut {
  identity,        // S(x) = x where shapes match; otherwise the same as `projection`
  zero_pad,        // option A (He 2015): S(x) = x[:, :, ::s, ::s] with zero channels appended (conv only)
  projection,      // option B (He 2015): S(x) = BN(W_s x) where the shape changes, x elsewhere
  projection_all,  // option C (He 2015): S(x) = BN(W_s x) in every block
  avg_projection,  // ResNet-D (He et al. 2019): S(x) = BN(W_s avgpool_s(x)) where the shape changes
  conv1x1,         // S(x) = W_s x in every block, no BN (He 2016 Table 1, "1×1 conv shortcut")
};

enum class Mix {
  none,            // z = F(x)                                        (plain block, no shortcut)
  sum,             // z = S(x) + F(x)
  scaled,          // z = λ_s·S(x) + λ_f·F(x), λ fixed (constant scaling; attenuated identity)
  learned_scale,   // z = S(x) + α·F(x), α a learnable scalar, α = alpha_init (ReZero / SkipInit: 0)
  exclusive_gate,  // z = (1 − g)·S(x) + g·F(x), g = σ(W_g x + b_g)     (He 2016 Table 1; highway T)
  shortcut_gate,   // z = (1 − g)·S(x) + F(x),   g = σ(W_g x + b_g)     (He 2016 "shortcut-only gating")
  carry_gate,      // z = c·S(x) + g·F(x), g = σ(W_g x + b_g), c = σ(W_c x + b_c)   (highway, carry gate)
};

enum class Post {
  none,     // y = z          (pre-activation units)
  relu,     // y = relu(z)    (original ResNet unit)
  bn_relu,  // y = relu(BN(z)) (He 2016 Table 2, "BN after addition")
  ln,       // y = LN(z)      (Post-LN; linear layers only, over the last dim)
};

struct ResidualOptions {
  int64_t in = 0, out = 0, stride = 1;
  Layer layer = Layer::conv;
  Shortcut shortcut = Shortcut::identity;
  Mix mix = Mix::sum;
  Post post = Post::none;
  double shortcut_scale = 1.0;  // λ_s (Mix::scaled)
  double branch_scale = 1.0;    // λ_f (Mix::scaled)
  double alpha_init = 0.0;      // α at init (Mix::learned_scale)
  double gate_bias = 0.0;       // b_g at init (gates); b_g is a learnable parameter
  double carry_bias = 0.0;      // b_c at init (Mix::carry_gate)
  // h: dropout on the shortcut. rescale = false keeps the mask unscaled in training (expected
  // shortcut 0.5·x at p = 0.5, He 2016's setting) and multiplies by (1 − p) in eval.
  double shortcut_dropout = 0.0;
  bool shortcut_dropout_rescale = false;
  // Stochastic depth: in training the branch term is dropped per sample with this probability and
  // the survivors are scaled by 1/(1 − p) (so eval needs no rescaling).
  double drop_path = 0.0;
};

// Per-sample drop-path: x [N, ...] multiplied by mask[N, 1, ...]/(1 − p), mask ~ Bernoulli(1 − p).
// Identity when !training or p == 0.
Tensor drop_path(const Tensor& x, double p, bool training, Generator* gen = nullptr);

// Stochastic depth's linear decay (Huang et al. 2016): p_l = p_max · l / L for blocks l = 1..L.
std::vector<double> linear_drop_path(int64_t blocks, double p_max);

// Attenuated identity (arXiv 2404.10947, official code): one α per sublayer, linear from exactly
// 1 (first sublayer) to alpha_min (last): α_l = 1 − (1 − alpha_min) · l / (S − 1), l = 0..S−1.
std::vector<double> attenuation_schedule(int64_t sublayers, double alpha_min);

// The shortcut module S for the given geometry, or nullptr for the identity.
nn::ModulePtr make_shortcut(Shortcut kind, Layer layer, int64_t in, int64_t out, int64_t stride);

// y = post(a(x)·h(S(x)) + b(x)·drop_path(F(x))). Children: "branch", "shortcut" (when not the
// identity), "gate" and "carry" (gates), "post_norm" (Post::bn_relu, Post::ln); parameter "alpha"
// (Mix::learned_scale). Errors: shapes the options cannot produce (e.g. identity with in != out in
// the linear domain, zero_pad or stride in the linear domain, Post::ln in the conv domain).
class Residual : public nn::Module {
 public:
  Residual(nn::ModulePtr branch, const ResidualOptions& o);
  std::string type_name() const override { return "Residual"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

  // The pieces, for lesion and path analyses: F(x), S(x) (before dropout) and z before `post`.
  Tensor branch(const Tensor& x);
  Tensor shortcut(const Tensor& x);
  // h(S(x)): the shortcut after shortcut dropout, as forward adds it. training = false gives the
  // eval-mode value, deterministic: S(x), or (1 − p)·S(x) without rescaling.
  Tensor shortcut_term(const Tensor& x, bool training);
  Tensor pre_post(const Tensor& x);
  // The operation after the sum (none, ReLU, BN + ReLU or LayerNorm): y = post(pre_post(x)).
  Tensor post(const Tensor& z);
  // The formula this configuration computes, e.g. "y = relu(S(x) + F(x))".
  std::string formula() const;

  const ResidualOptions& options() const { return o_; }
  // Changing λ_s (attenuation schedules) and drop-path (stochastic-depth schedules) after build.
  void set_shortcut_scale(double s) { o_.shortcut_scale = s; }
  void set_drop_path(double p);
  Tensor alpha() const;  // undefined unless Mix::learned_scale

 private:
  ResidualOptions o_;
  nn::ModulePtr branch_, shortcut_, gate_, carry_, post_norm_;
};

}  // namespace resin::blocks
