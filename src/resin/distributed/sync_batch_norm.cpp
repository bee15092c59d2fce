#include "resin/distributed/sync_batch_norm.h"

#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/nn/layers.h"

namespace resin::distributed {

namespace {

// Written with tensor ops, so the same code runs on every device (CPU, GPU, the placement-check
// device); sums and the normalisation are computed in f64 whatever the activation's dtype.

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

// In-place sum over every rank of a tensor of x's device, through the communicator's device (Gloo
// reduces host memory only; NCCL the rank's GPU).
Tensor all_reduced(const Tensor& t, Communicator& comm) {
  Tensor on_comm = t.to(comm.device());
  comm.all_reduce(on_comm);
  return on_comm.to(t.device());
}

// Detached: the ops below record nothing; the backward is SyncBatchNormBackward.
Tensor f64_of(const Tensor& t) { return t.detach().to(DType::f64); }

struct SyncBatchNormBackward final : autograd::Node {
  CommunicatorPtr comm;
  Tensor x;                     // the input, as given (its dtype)
  Tensor mean, invstd, weight;  // [C] f64; weight undefined when the layer has none
  double count = 0;             // elements per channel over all ranks
  std::string name() const override { return "SyncBatchNormBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = mean = invstd = weight = Tensor(); }

  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    const auto dims = reduced_dims(x);
    // The gradient in x's layout, so that channels-last activations get channels-last gradients.
    Tensor gy = f64_of(x.dim() == 4 ? grads[0].contiguous(x.suggest_memory_format()) : grads[0]);
    Tensor xmu = sub(f64_of(x), per_channel(mean, x));
    // This rank's [sum dy, sum dy (x - mean)] per channel.
    Tensor local_dy = sum(gy, dims), local_dy_xmu = sum(mul(gy, xmu), dims);
    std::vector<Tensor> out(3);
    if (weight.defined() && needs_input_grad(1)) out[1] = mul(local_dy_xmu, invstd).to(x.dtype());
    if (needs_input_grad(2)) out[2] = local_dy.to(x.dtype());
    if (needs_input_grad(0)) {
      // The same on every rank: x requires grad everywhere or nowhere.
      const int64_t C = mean.numel();
      Tensor total = all_reduced(concat({local_dy, local_dy_xmu}, 0), *comm);
      Tensor mean_dy = mul(total.narrow(0, 0, C), 1.0 / count);
      Tensor xmu_coef = mul(mul(mul(invstd, invstd), total.narrow(0, C, C)), 1.0 / count);
      Tensor scale = weight.defined() ? mul(invstd, weight) : invstd;
      // dx = weight * invstd * (dy - sum dy / N - (x - mean) * invstd^2 * sum dy (x - mean) / N)
      Tensor centred = sub(sub(gy, per_channel(mean_dy, x)), mul(xmu, per_channel(xmu_coef, x)));
      out[0] = mul(centred, per_channel(scale, x)).to(x.dtype());
    }
    return out;
  }
};

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
      RESIN_CHECK(t->dim() == 1 && t->size(0) == C && t->dtype() == x.dtype() && t->device() == x.device(),
                  "sync_batch_norm: parameter/statistic ", t->shape(), " ", t->dtype(), " on ", t->device(),
                  " for ", C, " channels of ", x.dtype(), " on ", x.device());
  const auto dims = reduced_dims(x);
  Tensor xd = f64_of(x);

  // Global per-channel [sum x, sum x^2] and the element count, in one all-reduce.
  const double local_count = C > 0 ? static_cast<double>(x.numel() / C) : 0.0;
  Tensor stats = all_reduced(concat({sum(xd, dims), sum(mul(xd, xd), dims),
                                     full({1}, local_count, {.dtype = DType::f64, .device = x.device()})},
                                    0),
                             *comm);
  const double n = stats.narrow(0, 2 * C, 1).item();
  RESIN_CHECK(n > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got input ", x.shape(),
              " on this rank");
  Tensor mean = mul(stats.narrow(0, 0, C), 1.0 / n);
  Tensor var =
      relu(sub(mul(stats.narrow(0, C, C), 1.0 / n), mul(mean, mean)));  // biased; >= 0 despite rounding
  Tensor invstd = rsqrt(add(var, eps));
  Tensor w = weight.defined() ? f64_of(weight) : Tensor();
  Tensor scale = w.defined() ? mul(invstd, w) : invstd;
  Tensor y = mul(sub(xd, per_channel(mean, x)), per_channel(scale, x));
  if (bias.defined()) y = add(y, per_channel(f64_of(bias), x));
  y = y.to(x.dtype());

  if (running_mean.defined() && running_var.defined()) {
    Tensor rm = add(mul(f64_of(running_mean), 1 - momentum), mul(mean, momentum));
    Tensor rv = add(mul(f64_of(running_var), 1 - momentum), mul(var, momentum * n / (n - 1)));
    for (auto [from, to] : {std::pair{rm, running_mean}, std::pair{rv, running_var}}) {
      Tensor in_dtype = from.to(to.dtype());
      backend::backend_for(in_dtype).copy(in_dtype, to.detach());
    }
  }
  if (autograd::any_requires_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<SyncBatchNormBackward>();
    node->comm = comm;
    node->x = x.detach();
    node->mean = mean;
    node->invstd = invstd;
    node->weight = w;
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
