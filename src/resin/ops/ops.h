// The public differentiable API: one line per op. Every op records a named XBackward node when
// grad mode is on and an input requires grad. The list of ops lives in backend/ops.def.
//
// Broadcasting follows numpy/PyTorch. 4-D activations are logically NCHW; outputs keep the
// physical layout (contiguous or channels-last) of their main input.
#pragma once
#include <optional>
#include <vector>

#include "resin/core/rng.h"
#include "resin/tensor/tensor.h"

namespace resin {

// ---- elementwise (ops/elementwise.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);  // op table: add_scalar
Tensor mul(const Tensor& a, double s);  // op table: mul_scalar
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor abs(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
// cond ? a : b with broadcasting; cond is any dtype, non-zero means true; no gradient to cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// relu(a + b) in one pass, with broadcasting as add (the end of a residual unit). Saves only its
// output for backward.
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// Comparisons give 1/0 in the dtype of a; never differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

// ---- reductions (ops/reduction.cpp). Empty dims = all dims.
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Gradient of max/min is split evenly between tied elements (as torch.amax/amin).
Tensor max(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// correction = 1 gives the unbiased estimate (torch.var default).
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim);  // i64, not differentiable
// Sums `x` down to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- linear algebra (ops/linalg.cpp)
// torch.matmul semantics: 1-D, 2-D and batched with broadcast batch dims. matmul, linear and
// conv2d compute in bf16 (f32 results) under AutocastGuard(DType::bf16): core/autocast.h.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] @ weight[out, in]^T + bias[out]; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// ---- neural-network ops (ops/conv.cpp, ops/norm.cpp, ops/pool.cpp)
struct Conv2dOptions {
  std::vector<int64_t> stride = {1, 1};
  std::vector<int64_t> padding = {0, 0};
  std::vector<int64_t> dilation = {1, 1};
  int64_t groups = 1;
};
// x [N, C, H, W] (any layout), weight [O, C/groups, KH, KW], bias [O] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, const Conv2dOptions& o = {});

// x [N, C] or [N, C, *]. In training, normalises with batch statistics and, when running stats are
// given, updates them in place: running = (1 - momentum) * running + momentum * batch (unbiased
// variance), as torch does. In eval, uses the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);
// relu(batch_norm(...)), same arguments; in training the ReLU is fused into the normalisation (a
// pass less each way, and the normalised tensor before the ReLU is not kept for backward).
Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                       double eps = 1e-5);
// Normalises over the trailing dims given by normalized_shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

struct Pool2dOptions {
  std::vector<int64_t> kernel = {2, 2};
  std::vector<int64_t> stride = {};  // empty = kernel
  std::vector<int64_t> padding = {0, 0};
  bool count_include_pad = true;     // avg pool only
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o);
// Output H×W fixed; bins as in PyTorch (start = floor(i*H/OH), end = ceil((i+1)*H/OH)).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
inline Tensor global_avg_pool2d(const Tensor& x) { return adaptive_avg_pool2d(x, 1, 1); }

// ---- shape ops (ops/shape.cpp); views share storage
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
// torch.nn.functional.pad order: (last_lo, last_hi, second_last_lo, second_last_hi, ...).
// Negative amounts crop. Option-A shortcuts pad channels with {0,0, 0,0, 0,0, lo,hi}... or use dim form.
Tensor pad(const Tensor& x, const std::vector<int64_t>& amounts, double value = 0.0);

// ---- softmax and losses (ops/loss.cpp)
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
enum class Reduction { none, mean, sum };
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;
};
// logits [N, C], target [N] (i64 class indices in [0, C)).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o = {});
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction r = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::mean);
// Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p); identity if !training.
Tensor dropout(const Tensor& x, double p, bool training, Generator* gen = nullptr);
// indices (i64, any shape) into weight [V, D] → [..., D].
Tensor embedding(const Tensor& indices, const Tensor& weight);

}  // namespace resin
