// Launchers for resin's own CUDA kernels (the .cu files), seen by the host code of the backend.
// Plain types only (no Tensor), so the .cu files stay small and quick to compile.
//
// Addressing: every launcher that takes an Indexer<N> walks one logical shape (collapsed, at most
// kMaxDims dims, innermost last) with N operands, each with its own element strides (0 for a
// broadcast operand). Data pointers point at each operand's first element. All launches go to the
// given stream and return without waiting.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace resin::backend::cuda {

constexpr int kMaxDims = 8;

// True in the emulated GPU's build of these kernels (tests/cuda_emulation), false on a real GPU.
bool emulated_gpu();

// Same order as resin::DType.
enum class ScalarType : int { f32, f64, bf16, i64, i32, u8, f16 };  // DType's order (scalar_type casts)

template <int N>
struct Indexer {
  int ndim = 0;
  int64_t numel = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
};

// Same order as backend::Unary / Binary / Reduce (static_asserts in cuda_backend.cpp).
enum class UnaryOp : int { neg, exp, log, sqrt, rsqrt, abs, relu, leaky_relu, gelu, gelu_tanh, sigmoid, tanh,
                           softplus, pow, clamp };
enum class BinaryOp : int { add, sub, mul, div, eq, gt, lt };
enum class ReduceOp : int { sum, mean, max, min };

// ---- elementwise.cu. Floating kernels take f32 or f64 (all operands one type).
// operands: x, out
void launch_unary(cudaStream_t s, UnaryOp op, ScalarType t, const Indexer<2>& ix, const void* x, void* out,
                  double alpha, double beta);
// operands: x, y, gy, gx
void launch_unary_backward(cudaStream_t s, UnaryOp op, ScalarType t, const Indexer<4>& ix, const void* x,
                           const void* y, const void* gy, void* gx, double alpha, double beta);
// operands: a, b, out
void launch_binary(cudaStream_t s, BinaryOp op, ScalarType t, const Indexer<3>& ix, const void* a, const void* b,
                   void* out);
// operands: cond (same type as out), a, b, out
void launch_where(cudaStream_t s, ScalarType t, const Indexer<4>& ix, const void* cond, const void* a, const void* b,
                  void* out);
// operands: src, dst; any pair of types (bf16 and f16 round to nearest even, as resin's BFloat16 and
// Float16).
void launch_copy(cudaStream_t s, ScalarType src_t, ScalarType dst_t, const Indexer<2>& ix, const void* src,
                 void* dst);
// Writes the elem_size-byte pattern (1, 2, 4 or 8) to every element of a strided tensor.
void launch_fill(cudaStream_t s, const Indexer<1>& ix, void* dst, const void* elem, int elem_size);
// Writes `count` copies of the pattern to dense memory.
void launch_fill_dense(cudaStream_t s, void* dst, int64_t count, const void* elem, int elem_size);

// ---- reduce.cu
// Reduces x over `reduce` (sizes/strides of the reduced dims of x) into out; `keep` walks the kept
// dims with operands x, out. scratch: at least reduce_scratch_bytes(...) bytes of device memory.
int64_t reduce_scratch_bytes(ScalarType t, int64_t outputs, int64_t reduced);
void launch_reduce(cudaStream_t s, ReduceOp op, ScalarType t, const Indexer<2>& keep, const Indexer<1>& reduce,
                   const void* x, void* out, void* scratch);
// Softmax along one dim of dense x/y/gx (shared strides): lanes = outer x inner, len elements each
// at `stride`; lane l starts at (l / inner) * outer_stride + (l % inner) * inner_stride.
struct Lanes {
  int64_t lanes, inner, outer_stride, inner_stride, len, stride;
};
void launch_softmax(cudaStream_t s, ScalarType t, const Lanes& l, const void* x, void* y, bool log);
void launch_softmax_backward(cudaStream_t s, ScalarType t, const Lanes& l, const void* y, const void* gy, void* gx,
                             bool log);
// Layer norm over rows of contiguous [M, N]; gamma/beta may be null.
void launch_layer_norm(cudaStream_t s, ScalarType t, int64_t M, int64_t N, const void* x, const void* gamma,
                       const void* beta, void* y, void* mean, void* rstd, double eps);
// gx may be null; ggamma/gbeta (may be null) get column sums.
void launch_layer_norm_backward(cudaStream_t s, ScalarType t, int64_t M, int64_t N, const void* x, const void* gy,
                                const void* mean, const void* rstd, const void* gamma, void* gx, void* ggamma,
                                void* gbeta);
// flag (device int, set to 0 by the caller) becomes 1 when any of the n elements is NaN or inf.
void launch_nonfinite(cudaStream_t s, ScalarType t, const void* x, int64_t n, int* flag);

// ---- nn.cu
struct PoolGeometry {
  int64_t N, C, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
  int64_t x_strides[4], y_strides[4];  // NCHW-ordered element strides of x (gx) and y (gy)
};
// Max pooling writes argmax (ih * W + iw) per output element to idx (dense [N, C, OH, OW]).
void launch_max_pool(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* x, void* y, int64_t* idx);
void launch_avg_pool(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* x, void* y);
// Backward: one thread per input element gathers from the windows that contain it (no atomics).
void launch_max_pool_backward(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* gy, const int64_t* idx,
                              void* gx);
void launch_avg_pool_backward(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* gy, void* gx);

// Row kernels; strides in elements. out[i] = x[i, index[i]], gx[i, index[i]] += g[i].
void launch_gather_rows(cudaStream_t s, ScalarType t, int64_t n, const void* x, int64_t xs0, int64_t xs1,
                        const int64_t* index, int64_t is0, void* out, int64_t os0);
void launch_scatter_rows_add(cudaStream_t s, ScalarType t, int64_t n, const void* g, int64_t gs0,
                             const int64_t* index, int64_t is0, void* gx, int64_t gxs0, int64_t gxs1);
// out[i, j] = table[index[i], j]; gtable[index[i], j] += g[i, j] (atomic: indices may repeat).
void launch_index_select(cudaStream_t s, ScalarType t, int64_t n, int64_t d, const void* table, int64_t ts0,
                         int64_t ts1, const int64_t* index, void* out, int64_t os0, int64_t os1);
void launch_index_add(cudaStream_t s, ScalarType t, int64_t n, int64_t d, const void* g, int64_t gs0, int64_t gs1,
                      const int64_t* index, void* gtable, int64_t ts0, int64_t ts1);

// Batch-norm helpers on [C] vectors: var = 1 / inv_std^2 - eps; inv_std = 1 / sqrt(var + eps).
void launch_var_from_inv_std(cudaStream_t s, ScalarType t, int64_t n, const void* inv_std, double eps, void* var);
void launch_rsqrt_eps(cudaStream_t s, ScalarType t, int64_t n, const void* v, double eps, void* out);

// Optimizer updates over n dense elements (see backend/cuda_fused.h for the arithmetic).
struct SgdScalars {
  double weight_decay, momentum, one_minus_dampening, neg_lr;
  bool use_weight_decay, use_momentum, first, nesterov;
};
void launch_sgd(cudaStream_t s, ScalarType t, int64_t n, void* p, const void* g, void* buf, const SgdScalars& a);
struct AdamWScalars {
  double decay, beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, neg_step_size;
  bool amsgrad;
};
void launch_adamw(cudaStream_t s, ScalarType t, int64_t n, void* p, const void* g, void* m, void* v, void* vmax,
                  const AdamWScalars& a);

}  // namespace resin::backend::cuda
