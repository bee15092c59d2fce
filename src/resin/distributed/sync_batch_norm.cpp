#include "resin/distributed/sync_batch_norm.h"

#include <cstring>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/nn/layers.h"

namespace resin::distributed {

namespace {

struct AllReduceSumBackward final : autograd::Node {
  CommunicatorPtr comm;
  std::string name() const override { return "AllReduceSumBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    Tensor g = grads[0].clone();  // incoming gradients are never modified in place
    comm->all_reduce(g);
    return {g};
  }
};

}  // namespace

Tensor all_reduce_sum(const Tensor& x, const CommunicatorPtr& comm) {
  RESIN_CHECK(comm != nullptr, "all_reduce_sum: no communicator");
  RESIN_CHECK(x.defined() && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
              "all_reduce_sum: expected an f32 or f64 tensor, got ", x.defined() ? str_cat(x.dtype()) : "undefined");
  Tensor out = x.detach().clone();
  comm->all_reduce(out);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<AllReduceSumBackward>();
    n->comm = comm;
    autograd::set_history(n, {&x}, {&out});
  }
  return out;
}

Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, double momentum, double eps, const CommunicatorPtr& comm) {
  RESIN_CHECK(x.defined() && x.dim() >= 2, "sync_batch_norm: expected input [N, C] or [N, C, *], got ",
              x.defined() ? x.shape().str() : "undefined");
  const int64_t C = x.size(1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      RESIN_CHECK(t->dim() == 1 && t->size(0) == C && t->dtype() == x.dtype(), "sync_batch_norm: parameter/statistic ",
                  t->shape(), " ", t->dtype(), " for ", C, " channels of ", x.dtype());
  std::vector<int64_t> dims{0};
  Shape bshape(std::vector<int64_t>(static_cast<size_t>(x.dim()), 1));
  bshape[1] = C;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  const int64_t local_count = x.numel() / std::max<int64_t>(C, 1);

  // Pass 1: global per-channel sum, with the element count riding along in the last slot.
  Tensor s1 = all_reduce_sum(concat({sum(x, dims), full({1}, static_cast<double>(local_count), {.dtype = x.dtype()})}, 0),
                             comm);
  const double n = s1.narrow(0, C, 1).item();
  RESIN_CHECK(n > 1, "sync_batch_norm: expected more than 1 value per channel over all ranks, got input ", x.shape(),
              " on this rank");
  Tensor mean = s1.narrow(0, 0, C) * (1.0 / n);
  // Pass 2: global per-channel sum of squared deviations from the global mean.
  Tensor d = x - mean.reshape(bshape);
  Tensor var = all_reduce_sum(sum(d * d, dims), comm) * (1.0 / n);
  Tensor y = d * rsqrt(var + eps).reshape(bshape);
  if (weight.defined()) y = y * weight.reshape(bshape);
  if (bias.defined()) y = y + bias.reshape(bshape);
  if (running_mean.defined() && running_var.defined()) {
    NoGradGuard ng;
    Tensor rm = add(mul(running_mean.detach(), 1.0 - momentum), mul(mean.detach(), momentum));
    Tensor rv = add(mul(running_var.detach(), 1.0 - momentum), mul(var.detach(), momentum * n / (n - 1)));
    std::memcpy(running_mean.raw_data(), rm.contiguous().raw_data(), static_cast<size_t>(C) * dtype_size(x.dtype()));
    std::memcpy(running_var.raw_data(), rv.contiguous().raw_data(), static_cast<size_t>(C) * dtype_size(x.dtype()));
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
