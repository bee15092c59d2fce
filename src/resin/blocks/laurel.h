// LAuReL: learned augmented residual layers (Menghani, Kumar, Kumar; arXiv 2411.07501). One block
// wraps a branch F and replaces x + F(x) by
//
//   y = α·F(x_i) + β·( x_i + B·A·x_i + Σ_{j=0}^{k−1} γ_j · h(x_{i−j}) )
//
//   RW  (rw = true):     (α, β) = 2·softmax(a, b), a = b = 0 at init (α = β = 1)     +2 params
//   LR  (lr_rank = r):   A: D→r (Xavier), B: r→D (zero at init)                     +2rD params
//   PA  (pa_k = k):      γ_j learnable, 0 at init; h = identity (pa_rank = 0) or a
//                        rank-r map h = B'A' (both Xavier)                          +k (+2rD) params
//
// A term whose option is off is absent (α = β = 1 without RW). At init every variant equals the
// plain residual block x + F(x) exactly. x_{i−j} are the inputs of the preceding blocks: a
// LaurelSequence passes them; a lone block sees only its own input (j = 0).
//
// Features D are the last dim of x [..., D] (Layer::linear) or the channel dim of x [N, C, H, W]
// (Layer::conv, maps as 1×1 convs). F must preserve the shape.
#pragma once
#include "resin/blocks/residual.h"

namespace resin::blocks {

struct LaurelOptions {
  int64_t features = 0;
  Layer layer = Layer::linear;
  bool rw = false;
  int64_t lr_rank = 0;
  int64_t pa_k = 0;
  int64_t pa_rank = 0;
};

// Parameters: "rw" [2] = (a, b); "lr_a" [r, D], "lr_b" [D, r]; "pa_gamma" [k]; "pa_a" [r, D],
// "pa_b" [D, r]. Child "branch".
class LaurelBlock : public nn::Module {
 public:
  LaurelBlock(nn::ModulePtr branch, const LaurelOptions& o);
  std::string type_name() const override { return "LaurelBlock"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override { return forward(x, {}); }
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x, const std::vector<nn::OnnxValue>& history);
  // history: inputs of the preceding blocks, oldest first (only the last k − 1 are used).
  Tensor forward(const Tensor& x, const std::vector<Tensor>& history);
  const LaurelOptions& options() const { return o_; }
  // Parameters this block adds to its branch.
  int64_t added_parameters() const;

 private:
  Tensor map(const Tensor& x, const Tensor& a, const Tensor& b) const;  // b·(a·x) over the features
  Tensor p(const char* name) const;
  LaurelOptions o_;
  nn::ModulePtr branch_;
};

// Blocks "0", "1", ... applied in order, each seeing the inputs of the blocks before it.
class LaurelSequence : public nn::Module {
 public:
  LaurelSequence() = default;
  std::string type_name() const override { return "LaurelSequence"; }
  LaurelSequence& push_back(std::shared_ptr<LaurelBlock> b);
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  size_t size() const { return blocks_.size(); }

 private:
  std::vector<std::shared_ptr<LaurelBlock>> blocks_;
};

}  // namespace resin::blocks
