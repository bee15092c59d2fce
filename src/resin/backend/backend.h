// The typed kernel interface every backend implements. Ops (ops/) allocate outputs and call
// kernels through backend_for(); kernels never allocate user-visible tensors and never record
// autograd history.
//
// Backends: RefBackend (plain loops, f32 and f64 — the oracle), CpuBackend (oneDNN, f32;
// derives from RefBackend so anything it does not accelerate falls back to the loops), and the
// CUDA backend when built with RESIN_WITH_CUDA.
//
// Conventions: tensors may have any strides unless a kernel says otherwise; 4-D activations are
// logically NCHW and physically NCHW or channels-last (NHWC strides).
#pragma once
#include <string>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::backend {

enum class Unary { neg, exp, log, sqrt, rsqrt, abs, relu, leaky_relu, gelu, gelu_tanh, sigmoid, tanh,
                   softplus, pow, clamp };
// alpha/beta: leaky_relu slope; pow exponent; clamp lo/hi; softplus beta/threshold.
struct UnaryParams {
  double alpha = 0;
  double beta = 0;
};

enum class Binary { add, sub, mul, div, eq, gt, lt };  // comparisons give 1 or 0 in out's dtype
enum class Reduce { sum, mean, max, min };
enum class Pool { max, avg };

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};

// One axis of a convolution's output, (in + 2·pad − dilation·(kernel − 1) − 1) / stride + 1, with every
// product checked (geometry may come from a file). False when a parameter is out of range (stride or
// dilation < 1, pad < 0, kernel < 1), a product overflows, or the padded input is smaller than the
// dilated kernel; callers turn that into their own error message.
bool conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t* out);

struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  // Output size: floor((H + 2p - k) / s) + 1. Only the avg pool honours count_include_pad.
  bool count_include_pad = true;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // out = op(x); same shape.
  virtual void unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) = 0;
  // gx = gy * d op(x)/dx (ReLU: gy where x > 0, else 0, even for a NaN gy). y is the forward output
  // (defined for every op).
  virtual void unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy,
                              const Tensor& gx, UnaryParams p) = 0;
  // out = a op b. a and b are already expanded (stride 0) to out's shape.
  virtual void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out = cond ? a : b; all expanded to out's shape; cond is any dtype (non-zero = true).
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out has x's rank with every reduced dim of size 1.
  virtual void reduce(Reduce op, const Tensor& x, const Tensor& out) = 0;
  // dst = src, converting dtype and layout (a reorder).
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& dst, double value) = 0;

  // out[b] = a[b] @ b[b]; a [B, M, K], b [B, K, N], out [B, M, N]; transposes are strides.
  virtual void matmul(const Tensor& a, const Tensor& b, const Tensor& out) = 0;

  // x [N, C, H, W], w [O, C/g, KH, KW], bias [O] or undefined, y [N, O, OH, OW].
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                              const Conv2dParams& p) = 0;
  virtual void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                    const Conv2dParams& p) = 0;
  // gb may be undefined.
  virtual void conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                       const Tensor& gb, const Conv2dParams& p) = 0;
  // Both gradients in one call; gx and gw may each be undefined (not wanted); gb is computed only with gw. Backends that stage
  // gy into another layout do it once. Default: the two calls above.
  virtual void conv2d_backward(const Tensor& x, const Tensor& gy, const Tensor& w, const Tensor& gx,
                               const Tensor& gw, const Tensor& gb, const Conv2dParams& p);

  // x [N, C, H, W]; gamma/beta [C]; mean/var [C] outputs (var biased) in training.
  virtual void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                           const Tensor& y, const Tensor& mean, const Tensor& var,
                                           double eps) = 0;
  virtual void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                            const Tensor& mean, const Tensor& var, const Tensor& y,
                                            double eps) = 0;
  // Backward of the training-mode forward; ggamma/gbeta may be undefined.
  virtual void batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean,
                                   const Tensor& var, const Tensor& gamma, const Tensor& gx,
                                   const Tensor& ggamma, const Tensor& gbeta, double eps) = 0;

  // ---- fused kernels (ops add_relu, batch_norm_relu). The defaults compose the kernels above;
  // backends override them to save a pass over memory.
  // y = relu(a + b); a and b already expanded to y's shape.
  virtual void add_relu(const Tensor& a, const Tensor& b, const Tensor& y);
  // Backward of add_relu from its output y with the incoming gradient g1 + g2 (g2 may be undefined):
  // gx = g1 + g2, or 0 where y ≤ 0 (even a NaN sum). The sum is the f32 add of binary().
  virtual void add_relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx);
  // y = relu(batch norm of x) with batch statistics (outputs mean/var as above).
  virtual void batch_norm_relu_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                const Tensor& y, const Tensor& mean, const Tensor& var,
                                                double eps);
  // Backward of the above from its output y: batch_norm_backward of gy masked to y > 0.
  virtual void batch_norm_relu_backward(const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& mean,
                                        const Tensor& var, const Tensor& gamma, const Tensor& gx,
                                        const Tensor& ggamma, const Tensor& gbeta, double eps);

  // x [M, N] contiguous; gamma/beta [N] or undefined; mean/rstd [M] outputs.
  virtual void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                  double eps) = 0;
  virtual void layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& gamma, const Tensor& gx,
                                   const Tensor& ggamma, const Tensor& gbeta) = 0;

  // Returns what backward needs (max pool: argmax indices or a oneDNN workspace).
  virtual Tensor pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) = 0;
  virtual void pool2d_backward(Pool kind, const Tensor& gy, const Tensor& workspace, const Tensor& gx,
                               const Pool2dParams& p) = 0;

  virtual void softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) = 0;
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim,
                                bool log) = 0;

  virtual void concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) = 0;

  // Index kernels (oneDNN has none). x [N, C], index [N] i64: out[i] = x[i, index[i]].
  virtual void gather_rows(const Tensor& x, const Tensor& index, const Tensor& out) = 0;
  // gx[i, index[i]] += g[i] (gx zero-filled by the caller).
  virtual void scatter_rows_add(const Tensor& g, const Tensor& index, const Tensor& gx) = 0;
  // out[i, :] = table[index[i], :]; table [V, D], index [N] i64, out [N, D].
  virtual void index_select(const Tensor& table, const Tensor& index, const Tensor& out) = 0;
  // gtable[index[i], :] += g[i, :] (gtable zero-filled by the caller).
  virtual void index_add(const Tensor& g, const Tensor& index, const Tensor& gtable) = 0;
};

// The backend that runs kernels for tensors of this dtype/device.
Backend& backend_for(const Tensor& t);
Backend& ref_backend();
// Forces the reference backend for everything (tests and debugging). Also RESIN_BACKEND=ref.
void set_force_reference(bool on);
bool force_reference();

// Whether oneDNN runs bf16 convolutions and matmuls natively on this CPU (AVX512_BF16 or AMX), i.e.
// whether AutocastGuard(DType::bf16) (core/autocast.h) does anything. Uses oneDNN's effective ISA,
// so ONEDNN_MAX_CPU_ISA=AVX512_CORE turns bf16 off. cpu_isa_name(): that ISA, for messages.
bool bf16_compute_supported();
std::string cpu_isa_name();

class ForceReferenceGuard {
 public:
  explicit ForceReferenceGuard(bool on = true) : prev_(force_reference()) { set_force_reference(on); }
  ~ForceReferenceGuard() { set_force_reference(prev_); }

 private:
  bool prev_;
};

}  // namespace resin::backend
