// The CUDA backend (built with RESIN_WITH_CUDA): every Backend kernel for f32 and f64 tensors on a
// CUDA device. cuDNN runs convolution (forward and both backwards, algorithm chosen per shape and
// cached) and batch norm; cuBLAS runs matmul (strided batched GEMM); resin's own kernels
// (kernels.h) run elementwise ops, reductions, softmax, layer norm, pooling and the index kernels.
// copy also converts between every dtype and accepts a CPU source (an upload).
//
// Layouts: elementwise, reduction, pooling and softmax kernels take any strides. cuDNN calls see
// NCHW-contiguous or channels-last tensors: a convolution or batch norm picks the layout of x
// (channels-last when x is channels-last and not also contiguous) and copies any other operand
// into it, and the weight into the matching filter format (OIHW or OHWI).
//
// Numerics: f32 stays f32 — no TF32 in cuBLAS or cuDNN (CUDNN_FMA_MATH) unless RESIN_CUDA_TF32=1,
// so results agree with the reference backend to f32 rounding (kernel parity tests). Sums in
// resin's kernels accumulate in double. Max/avg pooling backward match the reference exactly.
//
// Deviations from RefBackend by design: index_add adds with atomics (order, and so the last bit
// of f32 sums over repeated indices, may vary between runs); cuDNN's reductions are its own.
//
// Algorithm choice: cuDNN's heuristics (cudnnGet*_v7) by default; RESIN_CUDNN_BENCHMARK=1 times
// the candidates once per shape instead (cudnnFind*Ex), like torch.backends.cudnn.benchmark.
// Either way the choice is cached per (shapes, strides, dtype, parameters).
//
// The max-pool workspace is the reference's: i64 argmax (ih * W + iw) per output, dense
// [N, C, OH, OW].
#pragma once
#include "resin/backend/backend.h"

namespace resin::backend {

// Counters since process start, for tests: convolution algorithm lookups.
struct ConvAlgoCacheStats {
  int64_t hits = 0;
  int64_t misses = 0;
};

class CudaBackend : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  static ConvAlgoCacheStats conv_cache_stats();

  void unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) override;
  void unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& gx,
                      UnaryParams p) override;
  void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce(Reduce op, const Tensor& x, const Tensor& out) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                      const Conv2dParams& p) override;
  void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dParams& p) override;
  void conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw, const Tensor& gb,
                               const Conv2dParams& p) override;
  void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                   const Tensor& mean, const Tensor& var, double eps) override;
  void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                    const Tensor& var, const Tensor& y, double eps) override;
  void batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                           double eps) override;
  void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                          const Tensor& mean, const Tensor& rstd, double eps) override;
  void layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta) override;
  Tensor pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) override;
  void pool2d_backward(Pool kind, const Tensor& gy, const Tensor& workspace, const Tensor& gx,
                       const Pool2dParams& p) override;
  void softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim, bool log) override;
  void concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) override;
  void gather_rows(const Tensor& x, const Tensor& index, const Tensor& out) override;
  void scatter_rows_add(const Tensor& g, const Tensor& index, const Tensor& gx) override;
  void index_select(const Tensor& table, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& g, const Tensor& index, const Tensor& gtable) override;
};

// The process-wide instance (backend_for() returns it for CUDA tensors).
CudaBackend& cuda_backend();

}  // namespace resin::backend
