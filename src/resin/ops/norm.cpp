// Batch and layer normalisation.
#include <cmath>

#include "resin/ops/detail.h"

namespace resin {
using namespace detail;

namespace {

// [N, C] and [N, C, L] views as 4-D [N, C, L, 1] so one kernel covers BatchNorm1d and 2d.
Tensor as_4d(const Tensor& x) {
  if (x.dim() == 4) return x;
  if (x.dim() == 2) return x.reshape({x.size(0), x.size(1), 1, 1});
  return x.reshape({x.size(0), x.size(1), x.size(2), 1});  // (not numel / (N * C): N may be 0)
}

// Backward of training-mode batch_norm, and of batch_norm_relu when y (the ReLU's output, 4-D like
// x) is kept.
struct BatchNormBackward : Node {
  Tensor x, y, mean, var, gamma;
  Shape in_shape;
  double eps = 1e-5;
  std::string name() const override { return y.defined() ? "BatchNormReluBackward" : "BatchNormBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = y = mean = var = gamma = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gy = as_4d(g[0]);
    Tensor gx = needs_input_grad(0) ? empty_like(x) : Tensor();
    Tensor gg = gamma.defined() && needs_input_grad(1) ? empty_like(gamma) : Tensor();
    Tensor gb = needs_input_grad(2) ? empty(Shape{x.size(1)}, like(x)) : Tensor();
    if (y.defined()) be(x).batch_norm_relu_backward(x, y, gy, mean, var, gamma, gx, gg, gb, eps);
    else be(x).batch_norm_backward(x, gy, mean, var, gamma, gx, gg, gb, eps);
    // reshape would copy a channels-last gradient to contiguous; only 2-D/3-D inputs need it.
    return {gx.defined() && gx.shape() != in_shape ? gx.reshape(in_shape) : gx, gg, gb};
  }
};

// running = running * a + batch * b, rounded as the ops mul, mul, add would (each in the dtype):
// a [C]-sized loop, not five kernel launches per BatchNorm per step.
template <class T>
void update_running_as(const Tensor& running, const Tensor& batch, double a, double b) {
  T* r = running.data<T>();
  const T* m = batch.data<T>();
  const T ta = static_cast<T>(a), tb = static_cast<T>(b);
  for (int64_t i = 0; i < running.numel(); ++i) {
    const T x = r[i] * ta, y = m[i] * tb;
    r[i] = x + y;
  }
}

void update_running(const Tensor& running, const Tensor& batch, double a, double b) {
  // The loop reads host memory; statistics on a GPU (and on cpu:1, the placement check, so that tests
  // exercise this path) take the ops below.
  const bool host_loop = running.device() == Device::cpu() && batch.device() == Device::cpu() &&
                         running.stride(0) == 1 && batch.stride(0) == 1;
  if (host_loop && running.dtype() == DType::f32) return update_running_as<float>(running, batch, a, b);
  if (host_loop && running.dtype() == DType::f64) return update_running_as<double>(running, batch, a, b);
  NoGradGuard ng;
  Tensor r = add(mul(running, a), mul(batch, b));
  be(r).copy(r, running);
}

}  // namespace

namespace {

// batch_norm, or with relu = true relu(batch_norm) with the ReLU fused in training.
Tensor batch_norm_impl(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps, bool relu) {
  check_floating(x, "batch_norm");
  RESIN_CHECK(x.dim() >= 2 && x.dim() <= 4, "batch_norm: expected input [N, C], [N, C, L] or [N, C, H, W], got ",
              x.shape());
  const int64_t C = x.size(1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined()) {
      check_same_dtype(x, *t, "batch_norm");
      RESIN_CHECK(t->dim() == 1 && t->size(0) == C, "batch_norm: parameter/statistic of shape ", t->shape(),
                  " for ", C, " channels");
    }
  RESIN_CHECK(training || (running_mean.defined() && running_var.defined()),
              "batch_norm: eval mode needs running_mean and running_var");
  Tensor x4 = as_4d(x.detach());
  const int64_t per_channel = x.numel() / std::max<int64_t>(C, 1);
  if (!training) {
    if (autograd::any_requires_grad({&x, &weight, &bias})) {
      // Eval mode with gradients (fine-tuning, lab analyses): an affine map built from ops.
      Shape bshape(std::vector<int64_t>(static_cast<size_t>(x.dim()), 1));
      bshape[1] = C;
      Tensor scale = rsqrt(add(running_var.detach(), eps));
      if (weight.defined()) scale = mul(scale, weight);
      Tensor shift = neg(mul(running_mean.detach(), scale));
      if (bias.defined()) shift = add(shift, bias);
      Tensor y = add(mul(x, scale.reshape(bshape)), shift.reshape(bshape));
      return relu ? resin::relu(y) : y;
    }
    Tensor y4 = empty_like(x4);
    be(x).batch_norm_forward_inference(x4, weight.defined() ? weight.detach() : Tensor(),
                                       bias.defined() ? bias.detach() : Tensor(), running_mean.detach(),
                                       running_var.detach(), y4, eps);
    if (relu) be(y4).unary(backend::Unary::relu, y4, y4, {});
    // reshape would copy a channels-last 4-D result to contiguous; only 2-D/3-D inputs need it.
    return x.dim() == 4 ? y4 : y4.reshape(x.shape());
  }
  RESIN_CHECK(per_channel > 1, "batch_norm: expected more than 1 value per channel when training, got input ",
              x.shape());
  Tensor y4 = empty_like(x4);
  Tensor mean = empty(Shape{C}, like(x)), var = empty(Shape{C}, like(x));
  const Tensor w = weight.defined() ? weight.detach() : Tensor(), b = bias.defined() ? bias.detach() : Tensor();
  if (relu) be(x).batch_norm_relu_forward_training(x4, w, b, y4, mean, var, eps);
  else be(x).batch_norm_forward_training(x4, w, b, y4, mean, var, eps);
  if (running_mean.defined() && running_var.defined()) {
    const double unbias = static_cast<double>(per_channel) / static_cast<double>(per_channel - 1);
    update_running(running_mean.detach(), mean, 1.0 - momentum, momentum);
    update_running(running_var.detach(), var, 1.0 - momentum, momentum * unbias);
  }
  Tensor y = y4.dim() == x.dim() ? y4 : make_view(y4, x.shape(), contiguous_strides(x.shape()), y4.offset());
  if (autograd::any_requires_grad({&x, &weight, &bias})) {
    auto n = std::make_shared<BatchNormBackward>();
    n->x = x4;
    // Detached: y4 may be y itself, whose grad_fn is this node (a cycle that leaks when no backward runs).
    if (relu) n->y = y4.detach();
    n->mean = mean;
    n->var = var;
    n->gamma = weight.defined() ? weight.detach() : Tensor();
    n->in_shape = x.shape();
    n->eps = eps;
    record(n, {&x, &weight, &bias}, {&y});
  }
  return y;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps) {
  if (fusion_disabled()) return relu(batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps));
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, true);
}

namespace {
struct LayerNormBackward : Node {
  Tensor x2, mean, rstd, gamma;
  Shape in_shape, norm_shape;
  std::string name() const override { return "LayerNormBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x2 = mean = rstd = gamma = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gy = g[0].contiguous().reshape({x2.size(0), x2.size(1)});
    Tensor gx = needs_input_grad(0) ? empty_like(x2) : Tensor();
    Tensor gg = needs_input_grad(1) ? empty(Shape{x2.size(1)}, like(x2)) : Tensor();
    Tensor gb = needs_input_grad(2) ? empty(Shape{x2.size(1)}, like(x2)) : Tensor();
    be(x2).layer_norm_backward(x2, gy, mean, rstd, gamma, gx, gg, gb);
    return {gx.defined() ? gx.reshape(in_shape) : gx, gg.defined() ? gg.reshape(norm_shape) : gg,
            gb.defined() ? gb.reshape(norm_shape) : gb};
  }
};
}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps) {
  check_floating(x, "layer_norm");
  RESIN_CHECK(!ns.empty() && ns.size() <= static_cast<size_t>(x.dim()), "layer_norm: normalized_shape ", ns,
              " does not fit input ", x.shape());
  for (size_t i = 0; i < ns.size(); ++i)
    RESIN_CHECK(x.size(x.dim() - static_cast<int64_t>(ns.size()) + static_cast<int64_t>(i)) == ns[i],
                "layer_norm: normalized_shape ", ns, " does not match the trailing dims of input ", x.shape());
  for (const Tensor* t : {&weight, &bias})
    if (t->defined()) {
      check_same_dtype(x, *t, "layer_norm");
      RESIN_CHECK(t->shape() == ns, "layer_norm: weight/bias shape ", t->shape(), ", expected ", ns);
    }
  const int64_t N = ns.numel(), M = x.numel() / std::max<int64_t>(N, 1);
  Tensor x2 = x.detach().contiguous().reshape({M, N});
  Tensor y2 = empty(Shape{M, N}, like(x));
  Tensor mean = empty(Shape{M}, like(x)), rstd = empty(Shape{M}, like(x));
  Tensor g = weight.defined() ? weight.detach().contiguous().reshape({N}) : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous().reshape({N}) : Tensor();
  be(x).layer_norm_forward(x2, g, b, y2, mean, rstd, eps);
  Tensor y = make_view(y2, x.shape(), contiguous_strides(x.shape()), 0);
  if (autograd::any_requires_grad({&x, &weight, &bias})) {
    auto n = std::make_shared<LayerNormBackward>();
    n->x2 = x2;
    n->mean = mean;
    n->rstd = rstd;
    n->gamma = g;
    n->in_shape = x.shape();
    n->norm_shape = ns;
    record(n, {&x, &weight, &bias}, {&y});
  }
  return y;
}

}  // namespace resin
