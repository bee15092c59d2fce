// Residual units with two weight layers, in every placement of normalisation and activation that
// He et al. 2016 ("Identity Mappings in Deep Residual Networks", Table 2 / Fig. 4) compare, plus
// Fixup's normalisation-free unit and the Pre-LN MLP unit; and highway layers. Each unit is a
// blocks::Residual (residual.h) whose branch F is built here, so every shortcut, mixing rule and
// drop-path option of ResidualOptions applies to every placement.
//
// W = a 3×3 conv (Layer::conv, stride on W1, padding 1) or a Linear (Layer::linear);
// BN = BatchNorm2d/1d (or nothing when norm = false); act = ReLU (or GELU).
//
//   UnitPlacement::original         y = relu(S(x) + BN(W2 act(BN(W1 x))))
//   UnitPlacement::bn_after_add     y = relu(BN(S(x) + W2 act(BN(W1 x))))
//   UnitPlacement::relu_before_add  y = S(x) + act(BN(W2 act(BN(W1 x))))
//   UnitPlacement::relu_preact      y = S(x) + BN(W2 act(BN(W1 act(x))))
//   UnitPlacement::full_preact      y = S(x) + W2 act(BN(W1 act(BN(x))))
//   UnitPlacement::ln_pre           y = S(x) + W2 act(W1 LN(x))      (Pre-LN MLP / FFN; linear only)
//   UnitPlacement::fixup            y = relu(S(x) + s·W2 act(W1(x + b1a) + b1b + b2a) + b2b)
//                                                                     (Zhang et al. 2019)
//
// The mixing rule (Mix) replaces "S(x) + ·" in every line; Mix::none gives the plain twin.
#pragma once
#include "resin/blocks/residual.h"

namespace resin::blocks {

enum class UnitPlacement { original, bn_after_add, relu_before_add, relu_preact, full_preact, ln_pre, fixup };
enum class Activation { relu, gelu };

struct UnitOptions {
  ResidualOptions residual = {};  // in, out, stride, layer, shortcut, mix, ...; `post` is set by the placement
  UnitPlacement placement = UnitPlacement::original;
  int64_t hidden = 0;           // width between W1 and W2 (0: out)
  bool norm = true;             // false: drop every BN (norm-free nets: SkipInit, ReZero)
  Activation activation = Activation::relu;
  // F(x) = 0 at init: zero the γ of the branch's last BN if it ends in one, else its last weight
  // layer (Goyal et al. 2017; the decayed-identity code's zero-init fc2).
  bool zero_init_last = false;
};

// The branch F alone (a Sequential, or a FixupBranch) and the `post` the placement implies.
nn::ModulePtr make_branch(const UnitOptions& o);
Post placement_post(UnitPlacement p, bool norm);
// The full unit: Residual(make_branch(o), o.residual with post = placement_post(...)).
std::shared_ptr<Residual> make_unit(const UnitOptions& o);
const char* placement_name(UnitPlacement p);
UnitPlacement parse_placement(const std::string& name);  // throws listing the names

// Fixup's branch. Parameters: weight1 (W1), weight2 (W2) and the scalars bias1a, bias1b, bias2a,
// scale (init 1), bias2b (init 0). At construction W1 is He-normal (fan_out) and W2 = 0, i.e.
// fixup_init with L = 1.
class FixupBranch : public nn::Module {
 public:
  FixupBranch(Layer layer, int64_t in, int64_t hidden, int64_t out, int64_t stride, Activation act);
  std::string type_name() const override { return "FixupBranch"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // W1 ← He-normal · L^(−1/(2m−2)) with m = 2 layers, i.e. · L^(−1/2); W2 ← 0.
  void reinit(int64_t num_branches);

 private:
  Layer layer_;
  int64_t stride_;
  Activation act_;
};

// Applies FixupBranch::reinit to every FixupBranch under `root` with L = their count (or
// num_branches when > 0). Returns L. The classifier's zero init is the model's job.
int64_t fixup_init(nn::Module& root, int64_t num_branches = 0);

// Highway layer (Srivastava et al. 2015): y = H(x)·T(x) + x·(1 − T(x)), H = act(W_H x + b_H),
// T = σ(W_T x + b_T), b_T = gate_bias at init (negative: biased towards carrying x). With
// carry_gate: y = H(x)·T(x) + x·C(x), C = σ(W_C x + b_C), b_C = carry_bias at init.
// A Residual with Mix::exclusive_gate / Mix::carry_gate; children branch.0 (W_H), gate (W_T),
// carry (W_C). Conv layers are 3×3, padding 1; shape-preserving only.
struct HighwayOptions {
  int64_t features = 0;
  Layer layer = Layer::linear;
  double gate_bias = -2.0;
  bool carry_gate = false;
  double carry_bias = 2.0;
  Activation activation = Activation::relu;
};
std::shared_ptr<Residual> make_highway(const HighwayOptions& o);

Tensor activate(const Tensor& x, Activation a);
// Its ONNX form (onnx_blocks.cpp): Relu, or GELU as emit::gelu writes it.
nn::OnnxValue activate(nn::OnnxEmitter& g, const nn::OnnxValue& x, Activation a);

}  // namespace resin::blocks
