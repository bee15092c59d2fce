#include "resin/distributed/sync_batch_norm.h"

#include <algorithm>
#include <cmath>

#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/nn/layers.h"

namespace resin::distributed {

// Two implementations of the same formulas (sync_batch_norm.h): loops over host memory with f64
// accumulators (the CPU: three passes over the activation, sums exact enough for any f32 input),
// and tensor ops for every other device (a GPU; cpu:1 in tests), whose reductions accumulate in
// double on CUDA. The ops version on the CPU summed f32 channels of 25k values with 3e-6 relative
// error (oneDNN accumulates in f32) and moved ~3x the bytes, so the CPU keeps its loops; tests
// compare the two (tests/distributed on cpu:1, tests/gpu on a GPU).

namespace host {
namespace {

// A dense [N, C, S] view of the activation: NCHW (channel blocks of S contiguous values) or
// channels-last (C contiguous values per position).
struct Layout {
  int64_t n = 0, c = 0, s = 0;
  bool channels_last = false;
  int64_t base(int64_t i, int64_t ch) const { return channels_last ? i * s * c + ch : (i * c + ch) * s; }
  int64_t stride() const { return channels_last ? c : 1; }
};

// x as a dense 4-D tensor in one of the two layouts (a copy only when it is in neither).
Tensor dense_4d(const Tensor& x, Layout& l) {
  Tensor x4 =
      x.dim() == 4
          ? x
          : x.reshape({x.size(0), x.size(1), x.numel() / std::max<int64_t>(1, x.size(0) * x.size(1)), 1});
  l = {x4.size(0), x4.size(1), x4.size(2) * x4.size(3), !x4.is_contiguous() && x4.is_channels_last()};
  return l.channels_last ? x4 : x4.contiguous();
}

// f(ch, index of element (i, ch, j)) for every element, channels in parallel.
template <class F>
void for_channels(const Layout& l, F f) {
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < l.c; ++ch)
    for (int64_t i = 0; i < l.n; ++i) {
      const int64_t b = l.base(i, ch), st = l.stride();
      for (int64_t j = 0; j < l.s; ++j) f(ch, b + j * st);
    }
}

std::vector<double> values_or(const Tensor& t, int64_t c, double fallback) {
  return t.defined() ? t.to_vector() : std::vector<double>(static_cast<size_t>(c), fallback);
}

struct HostSyncBatchNormBackward final : autograd::Node {
  CommunicatorPtr comm;
  Tensor x;  // dense 4-D, Layout l
  Layout l;
  Shape in_shape;
  std::vector<double> mean, invstd, weight;
  double count = 0;  // N over all ranks
  bool has_weight = false;
  std::string name() const override { return "SyncBatchNormBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = Tensor(); }

  template <class T>
  std::vector<Tensor> run(const Tensor& gy) {
    const T* xp = x.data<T>();
    const T* gp = gy.data<T>();
    const int64_t C = l.c;
    Tensor sums = zeros({2 * C}, {.dtype = DType::f64});  // [sum dy, sum dy (x - mean)]
    double* s = sums.data<double>();
    for_channels(l, [&](int64_t ch, int64_t k) {
      const double dy = gp[k];
      s[ch] += dy;
      s[C + ch] += dy * (static_cast<double>(xp[k]) - mean[static_cast<size_t>(ch)]);
    });
    std::vector<Tensor> out(3);
    const TensorOptions o{.dtype = x.dtype()};
    if (has_weight && needs_input_grad(1)) {
      out[1] = empty({C}, o);
      for (int64_t ch = 0; ch < C; ++ch)
        out[1].data<T>()[ch] = static_cast<T>(s[C + ch] * invstd[static_cast<size_t>(ch)]);
    }
    if (needs_input_grad(2)) {
      out[2] = empty({C}, o);
      for (int64_t ch = 0; ch < C; ++ch) out[2].data<T>()[ch] = static_cast<T>(s[ch]);
    }
    if (needs_input_grad(0)) {
      comm->all_reduce(sums);  // the same on every rank: x requires grad everywhere or nowhere
      Tensor gx = empty_like(x);
      T* dx = gx.data<T>();
      for_channels(l, [&](int64_t ch, int64_t k) {
        const auto c = static_cast<size_t>(ch);
        const double is = invstd[c], w = has_weight ? weight[c] : 1.0;
        const double xmu = static_cast<double>(xp[k]) - mean[c];
        dx[k] = static_cast<T>(w * is * (gp[k] - s[ch] / count - xmu * is * is * s[C + ch] / count));
      });
      out[0] = gx.dim() == static_cast<int64_t>(in_shape.size()) ? gx : gx.reshape(in_shape);
    }
    return out;
  }

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    Layout gl;
    Tensor gy = dense_4d(grads[0], gl);
    if (gl.channels_last != l.channels_last)
      gy = gy.contiguous(l.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
    return x.dtype() == DType::f64 ? run<double>(gy) : run<float>(gy);
  }
};

template <class T>
Tensor forward(const Tensor& x4, const Layout& l, const std::vector<double>& mean,
               const std::vector<double>& invstd, const std::vector<double>& w,
               const std::vector<double>& b) {
  Tensor y = empty_like(x4);
  const T* xp = x4.data<T>();
  T* yp = y.data<T>();
  for_channels(l, [&](int64_t ch, int64_t k) {
    const auto c = static_cast<size_t>(ch);
    yp[k] = static_cast<T>((static_cast<double>(xp[k]) - mean[c]) * invstd[c] * w[c] + b[c]);
  });
  return y;
}

template <class T>
void local_sums(const Tensor& x4, const Layout& l, double* s) {
  const T* xp = x4.data<T>();
  for_channels(l, [&](int64_t ch, int64_t k) {
    const double v = xp[k];
    s[ch] += v;
    s[l.c + ch] += v * v;
  });
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double momentum, double eps,
                       const CommunicatorPtr& comm) {
  const int64_t C = x.size(1);
  Layout l;
  Tensor x4 = dense_4d(x.detach(), l);

  // Global per-channel [sum x, sum x^2] and the element count, in one all-reduce.
  Tensor stats = zeros({2 * C + 1}, {.dtype = DType::f64});
  double* s = stats.data<double>();
  if (x.dtype() == DType::f64)
    local_sums<double>(x4, l, s);
  else
    local_sums<float>(x4, l, s);
  s[2 * C] = static_cast<double>(l.n * l.s);
  comm->all_reduce(stats);
  const double n = s[2 * C];
  RESIN_CHECK(n > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got input ",
              x.shape(), " on this rank");
  std::vector<double> mean(static_cast<size_t>(C)), var(mean.size()), invstd(mean.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    mean[c] = s[c] / n;
    var[c] = std::max(0.0, s[static_cast<size_t>(C) + c] / n - mean[c] * mean[c]);
    invstd[c] = 1.0 / std::sqrt(var[c] + eps);
  }
  const auto w = values_or(weight, C, 1.0), b = values_or(bias, C, 0.0);
  Tensor y4 = x.dtype() == DType::f64 ? forward<double>(x4, l, mean, invstd, w, b)
                                      : forward<float>(x4, l, mean, invstd, w, b);
  Tensor y = x.dim() == 4 ? y4 : y4.reshape(x.shape());

  if (running_mean.defined() && running_var.defined()) {
    std::vector<double> rm = running_mean.to_vector(), rv = running_var.to_vector();
    for (size_t c = 0; c < rm.size(); ++c) {
      rm[c] = (1 - momentum) * rm[c] + momentum * mean[c];
      rv[c] = (1 - momentum) * rv[c] + momentum * var[c] * n / (n - 1);
    }
    Tensor nm = from_vector(rm, {C}, {.dtype = x.dtype()}), nv = from_vector(rv, {C}, {.dtype = x.dtype()});
    backend::backend_for(nm).copy(nm, running_mean.detach());
    backend::backend_for(nv).copy(nv, running_var.detach());
  }
  if (autograd::any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<HostSyncBatchNormBackward>();
    node->comm = comm;
    node->x = x4;
    node->l = l;
    node->in_shape = x.shape();
    node->mean = std::move(mean);
    node->invstd = std::move(invstd);
    node->weight = w;
    node->has_weight = weight.defined();
    node->count = n;
    autograd::set_history(node, {&x, &weight, &bias}, {&y});
  }
  return y;
}

}  // namespace host

namespace device {
namespace {

// Tensor ops on x's device. Each rank takes its statistics in x's dtype (the mean, then the sum of
// squared deviations from it: no cancellation), the ranks combine them in f64, and the
// normalisation is the batch_norm op given those statistics (one fused pass, as in evaluation).

// Every dim but the channel dim 1: the dims a channel's statistics reduce over.
std::vector<int64_t> reduced_dims(const Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// A per-channel [C] tensor as [1, C, 1, ...] to broadcast against x.
Tensor per_channel(const Tensor& v, const Tensor& x) {
  std::vector<int64_t> s(static_cast<size_t>(x.dim()), 1);
  s[1] = v.numel();
  return v.reshape(Shape(std::move(s)));
}

// The sum over every rank of a tensor of x's device, through the communicator's device (Gloo
// reduces host memory only; NCCL the rank's GPU).
Tensor all_reduced(const Tensor& t, Communicator& comm) {
  Tensor on_comm = t.to(comm.device());
  comm.all_reduce(on_comm);
  return on_comm.to(t.device());
}

Tensor f64_of(const Tensor& t) { return t.to(DType::f64); }

struct DeviceSyncBatchNormBackward final : autograd::Node {
  CommunicatorPtr comm;
  Tensor x;                     // the input, detached
  Tensor mean, invstd, weight;  // [C] in x's dtype; weight undefined when the layer has none
  double count = 0;             // elements per channel over all ranks
  std::string name() const override { return "SyncBatchNormBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = mean = invstd = weight = Tensor(); }

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    const auto dims = reduced_dims(x);
    // The gradient in x's layout, so that channels-last activations get channels-last gradients.
    Tensor gy = (x.dim() == 4 ? grads[0].contiguous(x.suggest_memory_format()) : grads[0]).detach();
    Tensor xmu = sub(x, per_channel(mean, x));
    // This rank's [sum dy, sum dy (x - mean)] per channel.
    Tensor local_dy = sum(gy, dims), local_dy_xmu = sum(mul(gy, xmu), dims);
    std::vector<Tensor> out(3);
    if (weight.defined() && needs_input_grad(1)) out[1] = mul(local_dy_xmu, invstd);
    if (needs_input_grad(2)) out[2] = local_dy;
    if (needs_input_grad(0)) {
      // The same on every rank: x requires grad everywhere or nowhere.
      const int64_t C = mean.numel();
      Tensor total = all_reduced(f64_of(concat({local_dy, local_dy_xmu}, 0)), *comm).to(x.dtype());
      Tensor mean_dy = mul(total.narrow(0, 0, C), 1.0 / count);
      Tensor xmu_coef = mul(mul(mul(invstd, invstd), total.narrow(0, C, C)), 1.0 / count);
      Tensor scale = weight.defined() ? mul(invstd, weight) : invstd;
      // dx = weight * invstd * (dy - sum dy / N - (x - mean) * invstd^2 * sum dy (x - mean) / N)
      Tensor centred = sub(sub(gy, mul(xmu, per_channel(xmu_coef, x))), per_channel(mean_dy, x));
      out[0] = mul(centred, per_channel(scale, x));
    }
    return out;
  }
};

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double momentum, double eps,
                       const CommunicatorPtr& comm) {
  const int64_t C = x.size(1);
  // Detached: the ops below record nothing; the backward is SyncBatchNormBackward.
  const Tensor xd = x.detach(), w = weight.defined() ? weight.detach() : Tensor();
  const auto dims = reduced_dims(x);
  const int64_t local_n = C > 0 ? x.numel() / C : 0;

  // This rank's mean and sum of squared deviations, then over all ranks in one all-reduce of
  // [n * mean, M2 + n * mean^2, n] (f64): sum x and sum x^2 without summing squares of raw values.
  Tensor local_mean, local_m2;
  if (local_n > 0) {
    local_mean = mean(xd, dims);
    Tensor dev = sub(xd, per_channel(local_mean, x));
    local_m2 = sum(mul(dev, dev), dims);
  } else {
    local_mean = local_m2 = zeros({C}, {.dtype = x.dtype(), .device = x.device()});
  }
  Tensor m = f64_of(local_mean),
         n_l = full({1}, static_cast<double>(local_n), {.dtype = DType::f64, .device = x.device()});
  Tensor local_sum = mul(m, static_cast<double>(local_n));
  Tensor stats = all_reduced(concat({local_sum, add(f64_of(local_m2), mul(local_sum, m)), n_l}, 0), *comm);
  const double n = stats.narrow(0, 2 * C, 1).item();
  RESIN_CHECK(n > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got input ", x.shape(),
              " on this rank");
  Tensor mean64 = mul(stats.narrow(0, 0, C), 1.0 / n);
  Tensor var64 =
      relu(sub(mul(stats.narrow(0, C, C), 1.0 / n), mul(mean64, mean64)));  // biased; >= 0 despite rounding
  const Tensor mean_x = mean64.to(x.dtype()), var_x = var64.to(x.dtype());
  // The normalisation with the global statistics: batch_norm's evaluation form, one pass (it takes
  // up to 4 dims: [N, C, D, H, W] goes as [N, C, D*H*W]).
  Tensor y;
  if (local_n == 0) {
    y = empty_like(xd);  // this rank holds no samples (the others do)
  } else {
    const Tensor x_bn = x.dim() <= 4 ? xd : xd.reshape({x.size(0), C, local_n / x.size(0)});
    y = batch_norm(x_bn, mean_x, var_x, w, bias.defined() ? bias.detach() : Tensor(), /*training=*/false, 0.0,
                   eps);
    if (x.dim() > 4) y = y.reshape(x.shape());
  }

  if (running_mean.defined() && running_var.defined()) {
    Tensor rm = add(mul(f64_of(running_mean.detach()), 1 - momentum), mul(mean64, momentum));
    Tensor rv = add(mul(f64_of(running_var.detach()), 1 - momentum), mul(var64, momentum * n / (n - 1)));
    for (auto [from, to] : {std::pair{rm, running_mean}, std::pair{rv, running_var}}) {
      Tensor in_dtype = from.to(to.dtype());
      backend::backend_for(in_dtype).copy(in_dtype, to.detach());
    }
  }
  if (autograd::any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<DeviceSyncBatchNormBackward>();
    node->comm = comm;
    node->x = xd;
    node->mean = mean_x;
    node->invstd = rsqrt(add(var64, eps)).to(x.dtype());
    node->weight = w;
    node->count = n;
    autograd::set_history(node, {&x, &weight, &bias}, {&y});
  }
  return y;
}

}  // namespace device

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double momentum, double eps,
                       const CommunicatorPtr& comm) {
  RESIN_CHECK(comm != nullptr, "sync_batch_norm: no communicator");
  RESIN_CHECK(x.defined() && x.dim() >= 2 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
              "sync_batch_norm: expected an f32 or f64 input [N, C] or [N, C, *], got ",
              x.defined() ? str_cat(x.shape(), " ", x.dtype()) : "undefined");
  const int64_t C = x.size(1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      RESIN_CHECK(t->dim() == 1 && t->size(0) == C && t->dtype() == x.dtype() && t->device() == x.device(),
                  "sync_batch_norm: parameter/statistic ", t->shape(), " ", t->dtype(), " on ", t->device(),
                  " for ", C, " channels of ", x.dtype(), " on ", x.device());
  return (x.device() == Device::cpu() ? host::sync_batch_norm : device::sync_batch_norm)(
      x, running_mean, running_var, weight, bias, momentum, eps, comm);
}

int64_t convert_sync_batchnorm(nn::Module& model, const CommunicatorPtr& comm) {
  RESIN_CHECK(comm != nullptr, "convert_sync_batchnorm: no communicator");
  int64_t converted = 0;
  auto visit = [&](nn::Module& m) {
    auto* bn = dynamic_cast<nn::BatchNorm*>(&m);
    if (!bn) return;
    bn->set_training_forward([comm](nn::BatchNorm& self, const Tensor& x) {
      return sync_batch_norm(x, self.running_mean(), self.running_var(), self.weight(), self.bias(),
                             self.options().momentum, self.options().eps, comm);
    });
    ++converted;
  };
  visit(model);
  for (auto& [name, m] : model.named_modules()) visit(*m);
  return converted;
}

}  // namespace resin::distributed
