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
//   the reconstruction error. With an f32 stream this is ≈ 1e−5 relative (L2) after 128
//   Linear-BN-ReLU-Linear blocks, the limit of f32 rounding; wide_stream = true keeps the stream
//   in f64 and the reconstruction exact to ≈ 1e−12.
// - Parameters shared between blocks receive the sum of their gradients.
// - With recompute = false, or when no gradient is needed, the blocks run as ordinary modules.
#pragma once
#include <optional>

#include "resin/nn/module.h"

namespace resin::blocks {

// Children "f" and "g".
class RevBlock : public nn::Module {
 public:
  RevBlock(nn::ModulePtr f, nn::ModulePtr g);
  std::string type_name() const override { return "RevBlock"; }
  Tensor forward(const Tensor& x) override;  // x = concat(x1, x2) along dim 1
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // The two halves, recorded as ordinary autograd ops. F and G run in `compute` (default: the
  // halves' dtype); a wider stream is cast down for them and their outputs cast back up.
  std::pair<Tensor, Tensor> forward(const Tensor& x1, const Tensor& x2, std::optional<DType> compute = {});
  std::pair<Tensor, Tensor> inverse(const Tensor& y1, const Tensor& y2, std::optional<DType> compute = {});
  nn::Module& f() { return *f_; }
  nn::Module& g() { return *g_; }

 private:
  nn::ModulePtr f_, g_;
};

struct ReversibleOptions {
  int64_t dim = 1;        // the dim split into (x1, x2)
  bool recompute = true;  // false: store activations like any other stack (for comparison)
  // Carry (x1, x2) in f64 inside forward(x) while F and G compute in f32: the additions
  // y = x + F(·) then lose nothing, so the backward reconstructs each block's input to ~1e−15
  // instead of ~1e−5 after 128 blocks (f32 rounding of the stream, amplified by F and G). The
  // output is cast back to f32 (so inverse(forward(x)) still sees that one rounding). Costs two
  // casts per branch call and a stream of twice the bytes, constant in depth. No-op for f64 inputs.
  bool wide_stream = false;
};

// Blocks "0", "1", ...
class ReversibleSequence : public nn::Module {
 public:
  explicit ReversibleSequence(std::vector<std::shared_ptr<RevBlock>> blocks, const ReversibleOptions& o = {});
  std::string type_name() const override { return "ReversibleSequence"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // x from y = forward(x), by running the blocks' inverses (no graph; buffers left unchanged).
  Tensor inverse(const Tensor& y);
  // The stream itself: halves (x1, x2) in the stream's dtype, F and G run in `compute` (default:
  // the stream's dtype). forward(x) with wide_stream is forward(halves of x in f64, f32).
  std::pair<Tensor, Tensor> forward(const Tensor& x1, const Tensor& x2, std::optional<DType> compute = {});
  std::pair<Tensor, Tensor> inverse(const Tensor& y1, const Tensor& y2, std::optional<DType> compute = {});
  void set_recompute(bool on) { o_.recompute = on; }
  size_t size() const { return blocks_.size(); }

 private:
  std::vector<std::shared_ptr<RevBlock>> blocks_;
  ReversibleOptions o_;
};

}  // namespace resin::blocks
