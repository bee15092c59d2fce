// Reversible residual blocks (Gomez et al. 2017, "The Reversible Residual Network").
//
//   x = (x1, x2) split in halves along `dim`
//   y1 = x1 + F(x2)          inverse:  x2 = y2 − G(y1)
//   y2 = x2 + G(y1)                    x1 = y1 − F(x2)
//
// A ReversibleSequence runs its blocks without recording a graph and keeps only its final output.
// Its backward (one ReversibleBackward node for the whole stack) walks the blocks from last to
// first: it reconstructs each block's input from its output, re-runs F and G on the
// reconstruction with grad mode on, and back-propagates through that local graph with
// autograd::grad. Activation memory is therefore that of one block, whatever the depth; the
// price is one extra forward of F and G per step.
//
// Contracts:
// - F and G map a half [.., D/2, ..] to the same shape; x.size(dim) must be even.
// - Recomputation replays default_generator() (dropout in F/G sees the same masks) and restores
//   every buffer of F and G afterwards (BatchNorm running statistics and num_batches_tracked are
//   updated by the forward only, never by the recomputation).
// - Inputs are reconstructed in floating point: the gradients differ from storing activations by
//   the reconstruction error (≈ 1e−6 relative per 100 blocks in f32 for well-conditioned F, G).
// - Parameters shared between blocks receive the sum of their gradients.
// - With recompute = false, or when no gradient is needed, the blocks run as ordinary modules.
#pragma once
#include "resin/nn/module.h"

namespace resin::blocks {

// Children "f" and "g".
class RevBlock : public nn::Module {
 public:
  RevBlock(nn::ModulePtr f, nn::ModulePtr g);
  std::string type_name() const override { return "RevBlock"; }
  Tensor forward(const Tensor& x) override;  // x = concat(x1, x2) along dim 1
  // The two halves, recorded as ordinary autograd ops.
  std::pair<Tensor, Tensor> forward(const Tensor& x1, const Tensor& x2);
  std::pair<Tensor, Tensor> inverse(const Tensor& y1, const Tensor& y2);
  nn::Module& f() { return *f_; }
  nn::Module& g() { return *g_; }

 private:
  nn::ModulePtr f_, g_;
};

struct ReversibleOptions {
  int64_t dim = 1;        // the dim split into (x1, x2)
  bool recompute = true;  // false: store activations like any other stack (for comparison)
};

// Blocks "0", "1", ...
class ReversibleSequence : public nn::Module {
 public:
  explicit ReversibleSequence(std::vector<std::shared_ptr<RevBlock>> blocks, const ReversibleOptions& o = {});
  std::string type_name() const override { return "ReversibleSequence"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  // x from y = forward(x), by running the blocks' inverses (no graph).
  Tensor inverse(const Tensor& y);
  void set_recompute(bool on) { o_.recompute = on; }
  size_t size() const { return blocks_.size(); }

 private:
  std::vector<std::shared_ptr<RevBlock>> blocks_;
  ReversibleOptions o_;
};

}  // namespace resin::blocks
