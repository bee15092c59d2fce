#include "resin/distributed/sync_batch_norm.h"

#include <algorithm>
#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/nn/layers.h"

namespace resin::distributed {

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
  Tensor x4 = x.dim() == 4 ? x : x.reshape({x.size(0), x.size(1), x.numel() / std::max<int64_t>(1, x.size(0) * x.size(1)), 1});
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

struct SyncBatchNormBackward final : autograd::Node {
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
      for (int64_t ch = 0; ch < C; ++ch) out[1].data<T>()[ch] = static_cast<T>(s[C + ch] * invstd[static_cast<size_t>(ch)]);
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
Tensor forward(const Tensor& x4, const Layout& l, const std::vector<double>& mean, const std::vector<double>& invstd,
               const std::vector<double>& w, const std::vector<double>& b) {
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

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, double momentum, double eps, const CommunicatorPtr& comm) {
  RESIN_CHECK(comm != nullptr, "sync_batch_norm: no communicator");
  RESIN_CHECK(x.defined() && x.dim() >= 2 && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
              "sync_batch_norm: expected an f32 or f64 input [N, C] or [N, C, *], got ",
              x.defined() ? str_cat(x.shape(), " ", x.dtype()) : "undefined");
  const int64_t C = x.size(1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      RESIN_CHECK(t->dim() == 1 && t->size(0) == C && t->dtype() == x.dtype(), "sync_batch_norm: parameter/statistic ",
                  t->shape(), " ", t->dtype(), " for ", C, " channels of ", x.dtype());
  Layout l;
  Tensor x4 = dense_4d(x.detach(), l);

  // Global per-channel [sum x, sum x^2] and the element count, in one all-reduce.
  Tensor stats = zeros({2 * C + 1}, {.dtype = DType::f64});
  double* s = stats.data<double>();
  if (x.dtype() == DType::f64) local_sums<double>(x4, l, s);
  else local_sums<float>(x4, l, s);
  s[2 * C] = static_cast<double>(l.n * l.s);
  comm->all_reduce(stats);
  const double n = s[2 * C];
  RESIN_CHECK(n > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got input ", x.shape(),
              " on this rank");
  std::vector<double> mean(static_cast<size_t>(C)), var(mean.size()), invstd(mean.size());
  for (size_t c = 0; c < mean.size(); ++c) {
    mean[c] = s[c] / n;
    var[c] = std::max(0.0, s[static_cast<size_t>(C) + c] / n - mean[c] * mean[c]);
    invstd[c] = 1.0 / std::sqrt(var[c] + eps);
  }
  const auto w = values_or(weight, C, 1.0), b = values_or(bias, C, 0.0);
  Tensor y4 = x.dtype() == DType::f64 ? forward<double>(x4, l, mean, invstd, w, b) : forward<float>(x4, l, mean, invstd, w, b);
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
    auto node = std::make_shared<SyncBatchNormBackward>();
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
