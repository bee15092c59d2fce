// InferencePlan: a straight-line f32 inference graph of fused operations, compiled to oneDNN
// primitives once per input shape and then run with no per-call setup.
//
// What it does that the op-by-op path cannot: weights are reordered into the layout each
// convolution wants once, at compile time (the plan owns them and they never change);
// activations stay in whatever layout oneDNN picks (blocked nChw16c on AVX-512) from one
// primitive to the next, with a reorder only where consumer and producer disagree; bias, ReLU and
// a residual add are post-ops of the convolution that produces them (the residual operand is the
// destination oneDNN's sum post-op accumulates into); activation buffers are planned once (a
// buffer is reused as soon as its value's last consumer has run) and never allocated per call.
//
// Building: input(), then ops in execution order (each returns a Value), then set_output(). A Value
// may be used by any later op. Shapes are checked when the plan compiles for an input.
//
// Numerics: the same kernels as the op-by-op path, which also runs eligible 3×3 stride-1 convolutions
// on oneDNN's Winograd algorithm (want_winograd in cpu/dnnl_util.h), but with BN folded into the
// weights and bias, ReLU and the residual add as post-ops; results agree with the unfused module to
// about 1e-5 relative.
#pragma once
#include <memory>
#include <string>

#include "resin/backend/backend.h"

namespace resin::backend {

class InferencePlan {
 public:
  using Value = int;

  InferencePlan();
  ~InferencePlan();
  InferencePlan(InferencePlan&&) noexcept;
  InferencePlan& operator=(InferencePlan&&) noexcept;

  // True when plans can run: f32 oneDNN kernels are active (not RESIN_BACKEND=ref).
  static bool available();

  // The images [N, channels, H, W]; exactly one input per plan, declared first.
  Value input(int64_t channels);
  // relu(conv(x, w) + bias + residual): w [O, C, KH, KW] (groups from p), bias [O] or undefined,
  // residual a Value shaped like the result or -1. The plan keeps its own copies of w and bias.
  Value conv(Value x, const Tensor& w, const Tensor& bias, const Conv2dParams& p, bool relu,
             Value residual = -1);
  Value max_pool(Value x, const Pool2dParams& p);
  // Mean over H and W: [N, C, H, W] -> [N, C].
  Value global_avg_pool(Value x);
  // x [N, C] -> [N, O]: x w^T + bias; w [O, C], bias [O] or undefined.
  Value linear(Value x, const Tensor& w, const Tensor& bias);
  void set_output(Value v);

  // Runs the plan on x (f32, contiguous or channels-last, [N, channels, H, W]) and returns a fresh
  // contiguous tensor. Compiles for x's shape and layout on the first call that has them.
  Tensor run(const Tensor& x);
  // One line per compiled step for the last input shape run (kind, shapes, oneDNN implementation).
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace resin::backend
