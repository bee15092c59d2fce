// oneDNN (v2.6) kernels for f32 on the CPU. Derives from RefBackend: anything not overridden here,
// any operand that is not f32 (copy also takes bf16), and any configuration oneDNN rejects runs the
// reference loops instead. Fallbacks are silent and exact (same contract as the interface).
//
// Layout policy: primitives see each tensor in its own layout (a memory::desc built from its dims
// and strides, so NCHW, channels-last and arbitrary views all work). Convolution is the exception
// that reorders: a Winograd-eligible shape (want_winograd: 3×3, stride 1, ≥ 32 channels) asks for
// oneDNN's blocked nChw16c layout first and reorders x and y in and out on every call; otherwise it
// first asks for the tensors' own layouts, and when oneDNN offers only a gemm or reference kernel for
// them (NCHW on AVX-512) it asks again with format_tag::any and reorders activations and weights into
// the blocked layout oneDNN picks, and results back.
//
// Own kernels (native_kernels.h) replace oneDNN where it is slow or wrong here: training batch norm
// (optionally with the ReLU fused), add + ReLU, ReLU (oneDNN's turns NaN into 0), tensor-with-scalar
// arithmetic on permuted views and leading-dim sums; they accumulate in double.
//
// Performance (bench/bench_conv.cpp): with channels-last tensors direct convolutions run oneDNN's
// NHWC kernels with no activation reorders, within a few percent of raw oneDNN on the same layout;
// NCHW tensors pay a reorder of src and dst to oneDNN's blocked layout on every call. Weights are plain
// OIHW in resin and are reordered to oneDNN's blocked weight layout on every call (no version
// counter tells when an optimizer has changed them), as are weight gradients back.
//
// Propagation kinds: conv forward is forward_training (the interface does not say whether autograd
// will need the result, and on the CPU both kinds run the same kernels); batch norm training and
// layer norm are forward_training (they output statistics); max pooling is forward_training (its
// workspace is what backward needs); inference-only kernels (batch norm inference, avg pooling,
// eltwise, softmax) are forward_inference. Backward primitive descriptors take a forward hint.
//
// Deliberate fallbacks (oneDNN's semantics differ or it has no primitive): softplus unless beta = 1
// and threshold >= 15 (2.6's soft_relu has neither); clamp backward (clip passes the gradient on
// (lo, hi], resin on [lo, hi]); binary ops whose first operand is expanded, unless they commute
// (oneDNN broadcasts src1 only); f32 -> integer copies; where and the index kernels.
//
// Deviations from RefBackend that are by design: oneDNN's results are f32-accumulated (the reference
// accumulates in double; expect ~1e-5 relative differences, more for long reductions); reduce
// max/min do not promise NaN propagation.
//
// bf16 autocast (core/autocast.h): under AutocastGuard(DType::bf16), on a CPU with native bf16,
// convolutions (all three passes) and matmuls run oneDNN's bf16 kernels on bf16 copies of their f32
// inputs (converted by the staging reorder, fused with any layout change) and write f32 outputs; a
// configuration without a fast bf16 kernel keeps its f32 primitive. The cache keys include the
// compute type. Everything else ignores autocast.
//
// Max pooling returns its oneDNN workspace as a u8 tensor [N, C, OH, OW, bytes-per-element] laid
// out like the pooled output (the layout backward must use). A reference fallback returns the
// reference's i64 argmax instead, and pool2d_backward dispatches on which one it is given.
#pragma once
#include <cstdint>

#include "resin/backend/ref/ref_backend.h"

namespace resin::backend {

// Counters since process start (clear_cache() drops entries, not counts). `rejected` counts
// lookups that found (or built) a null entry, i.e. calls that went to the reference loops after
// asking oneDNN; `executed` counts oneDNN primitive executions, reorders included; `native` counts
// calls served by the backend's own kernels (native_kernels.h); `bf16` counts convolution and
// matmul executions that computed in bf16 under autocast (core/autocast.h).
struct PrimitiveCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t entries = 0;
  int64_t rejected = 0;
  int64_t executed = 0;
  int64_t native = 0;
  int64_t bf16 = 0;
};

// Which convolution passes compute in bf16 under autocast (the others keep their f32 primitive, Winograd
// included), and which of those ask oneDNN for its blocked layouts first instead of the tensors' own.
// The defaults are what measured fastest for CIFAR ResNets on AVX512_BF16 (docs/performance.md, bf16):
// every pass in bf16, both backward passes in nChw16c (oneDNN 2.6's NHWC bf16 backward-weights kernel
// is 17% slower idle and up to 30x slower on a loaded machine; a shared layout converts gy once).
// Environment overrides, read once: RESIN_BF16_PASSES and RESIN_BF16_BLOCKED, comma lists of fwd,
// bwd_data, bwd_weights (or "none").
struct Bf16Policy {
  bool fwd = true, bwd_data = true, bwd_weights = true;
  bool fwd_blocked = false, bwd_data_blocked = true, bwd_weights_blocked = true;
};

class CpuBackend : public RefBackend {
 public:
  const char* name() const override { return "cpu"; }

  // The process-wide bf16 policy (tests and benchmarks set it; cache keys include it).
  static Bf16Policy bf16_policy();
  static void set_bf16_policy(const Bf16Policy& p);

  static PrimitiveCacheStats cache_stats();
  static void clear_cache();

  void unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) override;
  void unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& gx,
                      UnaryParams p) override;
  void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce(Reduce op, const Tensor& x, const Tensor& out) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                      const Conv2dParams& p) override;
  void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                            const Conv2dParams& p) override;
  void conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw, const Tensor& gb,
                               const Conv2dParams& p) override;
  void conv2d_backward(const Tensor& x, const Tensor& gy, const Tensor& w, const Tensor& gx, const Tensor& gw,
                       const Tensor& gb, const Conv2dParams& p) override;
  void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                   const Tensor& mean, const Tensor& var, double eps) override;
  void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& mean, const Tensor& var, const Tensor& y,
                                    double eps) override;
  void batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                           double eps) override;
  void add_relu(const Tensor& a, const Tensor& b, const Tensor& y) override;
  void add_relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx) override;
  void batch_norm_relu_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                        const Tensor& mean, const Tensor& var, double eps) override;
  void batch_norm_relu_backward(const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& mean,
                                const Tensor& var, const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                                const Tensor& gbeta, double eps) override;
  void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                          const Tensor& mean, const Tensor& rstd, double eps) override;
  void layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                           const Tensor& gbeta) override;
  Tensor pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) override;
  void pool2d_backward(Pool kind, const Tensor& gy, const Tensor& workspace, const Tensor& gx,
                       const Pool2dParams& p) override;
  void softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim, bool log) override;
  void concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) override;
};

}  // namespace resin::backend
