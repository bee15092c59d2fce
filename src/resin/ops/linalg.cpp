// matmul with torch.matmul semantics, and linear.
#include "resin/core/autocast.h"
#include "resin/ops/detail.h"
#include "resin/ops/profile.h"

namespace resin {
using namespace detail;

namespace {

// [batch..., R, C] expanded to `batch` → a 3-D view [B, R, C] (copies only when the batch dims
// cannot be folded into one stride).
Tensor as_batched3(const Tensor& t, const Shape& batch) {
  Shape full = batch;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  Tensor e = t.shape() == full ? t : t.expand(full);
  if (batch.size() == 0)
    return make_view(e, Shape{1, e.size(-2), e.size(-1)}, Strides{0, e.stride(-2), e.stride(-1)}, e.offset());
  if (batch.size() == 1)
    return make_view(e, Shape{batch[0], e.size(-2), e.size(-1)}, Strides{e.stride(0), e.stride(-2), e.stride(-1)},
                     e.offset());
  return e.contiguous().reshape({batch.numel(), e.size(-2), e.size(-1)});
}

struct MatmulBackward : Node {
  Tensor a, b;
  DType compute = DType::f32;  // the autocast type of the forward pass; the gradients use it too
  std::string name() const override { return "MatmulBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { a = b = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    AutocastGuard autocast(compute);
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to(matmul(g[0], b.transpose(-1, -2)), a.shape());
    if (needs_input_grad(1)) gb = sum_to(matmul(a.transpose(-1, -2), g[0]), b.shape());
    return {ga, gb};
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_floating(a, "matmul");
  check_floating(b, "matmul");
  check_same_dtype(a, b, "matmul");
  RESIN_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dim, got ", a.shape(), " and ",
              b.shape());
  if (a.dim() == 1 && b.dim() == 1) return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape(Shape{});
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  RESIN_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a.shape(), " @ ", b.shape(), " (", K, " vs ",
              b.size(-2), ")");
  Shape ab(std::vector<int64_t>(a.shape().begin(), a.shape().end() - 2));
  Shape bb(std::vector<int64_t>(b.shape().begin(), b.shape().end() - 2));
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, like(a));
  Tensor a3 = as_batched3(a.detach(), batch), b3 = as_batched3(b.detach(), batch);
  Tensor o3 = make_view(out, Shape{std::max<int64_t>(batch.numel(), 1), M, N},
                        Strides{M * N, N, 1}, 0);
  MacCounter::add(out.numel() * K);
  if (batch.numel() != 0) be(out).matmul(a3, b3, o3);
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<MatmulBackward>();
    n->a = a.detach();
    n->b = b.detach();
    n->compute = autocast_dtype();
    record(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(weight, "linear", "weight");
  RESIN_CHECK(weight.dim() == 2, "linear: expected a 2-D weight [out, in], got ", weight.shape());
  RESIN_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input has ", x.dim() ? x.size(-1) : 0,
              " features (shape ", x.shape(), "), weight expects ", weight.size(1));
  if (bias.defined())
    RESIN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias shape ", bias.shape(),
                ", expected [", weight.size(0), "]");
  // [..., in] is folded to [rows, in] (a view when x is contiguous): one 2-D product, whose weight
  // gradient is one 2-D product too, instead of a batch of per-sample products summed afterwards.
  if (x.dim() > 2) {
    Shape out_shape = x.shape();
    out_shape[out_shape.size() - 1] = weight.size(0);
    int64_t rows = 1;  // explicit: reshape cannot infer -1 when there are no input features
    for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
    return linear(x.reshape({rows, x.size(-1)}), weight, bias).reshape(out_shape);
  }
  Tensor y = matmul(x, weight.transpose(0, 1));
  return bias.defined() ? add(y, bias) : y;
}

}  // namespace resin
