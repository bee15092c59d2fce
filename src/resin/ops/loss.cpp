// Softmax, losses, dropout and embedding.
#include "resin/ops/detail.h"

namespace resin {
using namespace detail;

namespace {

struct SoftmaxBackward : Node {
  Tensor y;
  int64_t dim = 0;
  bool log = false;
  std::string name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { y = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    // The kernel wants one layout for y, gy and gx. y is dense, so copy gy into y's exact strides
    // (comparing is_contiguous() is not enough: size-1 dims may carry any stride).
    Tensor gy = g[0];
    if (gy.strides() != y.strides()) {
      gy = empty_strided(y.shape(), y.strides(), like(y));
      be(y).copy(g[0], gy);
    }
    Tensor gx = empty_strided(y.shape(), y.strides(), like(y));
    be(y).softmax_backward(y, gy, gx, dim, log);
    return {gx};
  }
};

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_floating(x, op);
  dim = wrap_dim(dim, x.dim(), op);
  if (x.dim() == 0) return softmax_impl(x.reshape({1}), 0, log).reshape(Shape{});
  Tensor xc = x.is_non_overlapping_dense() ? x.detach() : x.detach().contiguous();
  Tensor y = empty_like(xc);
  if (x.numel() > 0) be(xc).softmax_forward(xc, y, dim, log);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<SoftmaxBackward>();
    n->y = y.detach();
    n->dim = dim;
    n->log = log;
    record(n, {&x}, {&y});
  }
  return y;
}

struct NllLossBackward : Node {
  Tensor target;
  Shape in_shape;
  std::string name() const override { return "NllLossBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { target = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = zeros(in_shape, like(g[0]));
    be(gx).scatter_rows_add(neg(g[0]).contiguous(), target, gx);
    return {gx};
  }
};

// Index tensors are range-checked on the host: a device index is copied over (and so waits for
// its stream) — an out-of-range class must be an error, not a wild device write.
Tensor host_indices(const Tensor& t) { return t.device() == Device::cpu() ? t : t.to(Device::cpu()); }

void check_targets(const Tensor& input, const Tensor& target, const char* op) {
  const int64_t n = input.size(0), classes = input.size(1);
  check_defined(target, op, "target");
  RESIN_CHECK(target.dtype() == DType::i64, op, ": expected i64 class indices, got ", target.dtype());
  RESIN_CHECK(target.dim() == 1 && target.size(0) == n, op, ": expected target of shape [", n, "], got ",
              target.shape());
  check_same_device(input, target, op, "the target");
  const Tensor host = host_indices(target);
  const int64_t* t = host.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    RESIN_CHECK(t[i * host.stride(0)] >= 0 && t[i * host.stride(0)] < classes, op, ": target ",
                t[i * host.stride(0)], " at index ", i, " is out of range [0, ", classes, ")");
}

Tensor reduce_loss(const Tensor& per_sample, Reduction r) {
  switch (r) {
    case Reduction::none: return per_sample;
    case Reduction::sum: return sum(per_sample);
    case Reduction::mean: return mean(per_sample);
  }
  return per_sample;
}

struct DropoutBackward : Node {
  Tensor mask;
  std::string name() const override { return "DropoutBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { mask = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {mul(g[0], mask)}; }
};

struct EmbeddingBackward : Node {
  Tensor index;
  Shape weight_shape;
  std::string name() const override { return "EmbeddingBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { index = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gw = zeros(weight_shape, like(g[0]));
    be(gw).index_add(g[0].contiguous().reshape({index.numel(), weight_shape[1]}), index, gw);
    return {gw};
  }
};

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor nll_loss(const Tensor& logp, const Tensor& target, Reduction r) {
  check_floating(logp, "nll_loss");
  RESIN_CHECK(logp.dim() == 2, "nll_loss: expected log-probabilities [N, C], got ", logp.shape());
  check_targets(logp, target, "nll_loss");
  Tensor picked = empty(Shape{logp.size(0)}, like(logp));
  be(logp).gather_rows(logp.detach(), target, picked);
  Tensor out;
  {
    NoGradGuard ng;
    out = neg(picked);
  }
  if (autograd::any_requires_grad({&logp})) {
    auto n = std::make_shared<NllLossBackward>();
    n->target = target;
    n->in_shape = logp.shape();
    record(n, {&logp}, {&out});
  }
  return reduce_loss(out, r);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& o) {
  check_floating(logits, "cross_entropy");
  RESIN_CHECK(logits.dim() == 2, "cross_entropy: expected logits [N, C], got ", logits.shape());
  RESIN_CHECK(o.label_smoothing >= 0 && o.label_smoothing <= 1, "cross_entropy: label_smoothing must be in [0, 1], got ",
              o.label_smoothing);
  check_targets(logits, target, "cross_entropy");
  Tensor logp = log_softmax(logits, 1);
  Tensor loss = nll_loss(logp, target, Reduction::none);
  if (o.label_smoothing > 0) {
    // (1 - eps) * nll + eps * mean over classes of -log p  (torch's definition)
    Tensor smooth = neg(mean(logp, {1}));
    loss = add(mul(loss, 1.0 - o.label_smoothing), mul(smooth, o.label_smoothing));
  }
  return reduce_loss(loss, o.reduction);
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_floating(input, "mse_loss");
  check_defined(target, "mse_loss", "target");
  check_same_dtype(input, target, "mse_loss");
  RESIN_CHECK(input.shape() == target.shape(), "mse_loss: input shape ", input.shape(), " vs target ", target.shape());
  Tensor d = sub(input, target);
  return reduce_loss(mul(d, d), r);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_floating(x, "dropout");
  RESIN_CHECK(p >= 0 && p <= 1, "dropout: probability must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  Tensor mask;
  if (p == 1) {
    mask = zeros(x.shape(), like(x));
  } else {
    NoGradGuard ng;
    mask = mul(gt(rand(x.shape(), like(x), gen), p), 1.0 / (1.0 - p));
  }
  Tensor out;
  {
    NoGradGuard ng;
    out = mul(x.detach(), mask);
  }
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<DropoutBackward>();
    n->mask = mask;
    record(n, {&x}, {&out});
  }
  return out;
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  check_floating(weight, "embedding");
  RESIN_CHECK(weight.dim() == 2, "embedding: expected weight [num_embeddings, dim], got ", weight.shape());
  check_defined(indices, "embedding", "indices");
  RESIN_CHECK(indices.dtype() == DType::i64, "embedding: expected i64 indices, got ", indices.dtype());
  check_same_device(weight, indices, "embedding", "indices");
  Tensor idx = indices.contiguous().reshape({indices.numel()});
  const Tensor host = host_indices(idx);
  const int64_t* ip = host.data<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    RESIN_CHECK(ip[i] >= 0 && ip[i] < weight.size(0), "embedding: index ", ip[i], " at position ", i,
                " is out of range [0, ", weight.size(0), ")");
  Tensor out = empty(Shape{idx.numel(), weight.size(1)}, like(weight));
  be(weight).index_select(weight.detach(), idx, out);
  Shape s = indices.shape();
  s.push_back(weight.size(1));
  out = make_view(out, s, contiguous_strides(s), 0);
  if (autograd::any_requires_grad({&weight})) {
    auto n = std::make_shared<EmbeddingBackward>();
    n->index = idx;
    n->weight_shape = weight.shape();
    record(n, {&weight}, {&out});
  }
  return out;
}

}  // namespace resin
