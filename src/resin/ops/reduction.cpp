// Reductions over dims, with keepdim.
#include <algorithm>

#include "resin/ops/detail.h"

namespace resin {
using namespace detail;
using backend::Reduce;

namespace {

struct ReduceSpec {
  Shape keep_shape;  // x's rank, reduced dims = 1
  Shape out_shape;   // keepdim ? keep_shape : reduced dims removed
  int64_t count = 1; // elements folded into each output
};

ReduceSpec reduce_spec(const Tensor& x, std::vector<int64_t> dims, bool keepdim, const char* op) {
  ReduceSpec r;
  std::vector<bool> red(static_cast<size_t>(x.dim()), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;  // a 0-d tensor accepts dim 0 / -1 and has nothing to reduce over
    RESIN_CHECK(!red[w], op, ": dim ", w, " listed twice");
    red[w] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (red[d]) {
      r.keep_shape.push_back(1);
      r.count *= x.size(d);
      if (keepdim) r.out_shape.push_back(1);
    } else {
      r.keep_shape.push_back(x.size(d));
      r.out_shape.push_back(x.size(d));
    }
  }
  return r;
}

Tensor reduce_raw(Reduce op, const Tensor& x, const ReduceSpec& r, const char* name) {
  check_floating(x, name);
  RESIN_CHECK(x.numel() > 0 || op == Reduce::sum, name, ": cannot reduce an empty tensor");
  Tensor out = empty(r.keep_shape, like(x));
  be(x).reduce(op, x.detach(), out);
  return out;
}

struct SumBackward : Node {
  Shape in_shape, keep_shape;
  double scale = 1;  // 1/count for mean
  std::string name() const override { return scale == 1 ? "SumBackward" : "MeanBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gk = g[0].reshape(keep_shape);
    if (scale != 1) gk = mul(gk, scale);
    return {gk.expand(in_shape).contiguous()};
  }
};

struct MaxMinBackward : Node {
  Tensor x, out_keep;
  Shape keep_shape;
  std::vector<int64_t> dims;
  bool is_max = true;
  std::string name() const override { return is_max ? "MaxBackward" : "MinBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = out_keep = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor mask = eq(x, out_keep);
    Tensor count = sum(mask, dims, true);
    return {div(mul(mask, g[0].reshape(keep_shape)), count)};
  }
};

Tensor sum_or_mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_mean) {
  const char* name = is_mean ? "mean" : "sum";
  ReduceSpec r = reduce_spec(x, dims, keepdim, name);
  Tensor out = reduce_raw(is_mean ? Reduce::mean : Reduce::sum, x, r, name);
  out = detail::make_view(out, r.out_shape, contiguous_strides(r.out_shape), 0);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<SumBackward>();
    n->in_shape = x.shape();
    n->keep_shape = r.keep_shape;
    n->scale = is_mean ? 1.0 / static_cast<double>(r.count) : 1.0;
    record(n, {&x}, {&out});
  }
  return out;
}

Tensor max_or_min(const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  ReduceSpec r = reduce_spec(x, dims, keepdim, name);
  Tensor keep = reduce_raw(is_max ? Reduce::max : Reduce::min, x, r, name);
  Tensor out = detail::make_view(keep, r.out_shape, contiguous_strides(r.out_shape), 0);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<MaxMinBackward>();
    n->x = x.detach();
    n->out_keep = keep;
    n->keep_shape = r.keep_shape;
    if (dims.empty())
      for (int64_t d = 0; d < x.dim(); ++d) n->dims.push_back(d);
    else
      n->dims = dims;
    n->is_max = is_max;
    record(n, {&x}, {&out});
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return sum_or_mean(x, dims, keepdim, false); }
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return sum_or_mean(x, dims, keepdim, true); }
Tensor max(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return max_or_min(x, dims, keepdim, true); }
Tensor min(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return max_or_min(x, dims, keepdim, false); }

Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  ReduceSpec r = reduce_spec(x, dims, keepdim, "var");
  RESIN_CHECK(r.count - correction > 0, "var: ", r.count, " elements per output with correction ", correction,
              " leaves no degrees of freedom");
  // Composite: gradients come from sub/mul/sum.
  Tensor d = sub(x, mean(x, dims, true));
  return mul(sum(mul(d, d), dims, keepdim), 1.0 / static_cast<double>(r.count - correction));
}

Tensor argmax(const Tensor& x, int64_t dim) {
  RESIN_CHECK(x.dim() > 0, "argmax: expected a tensor with at least 1 dim, got shape ", x.shape());
  dim = wrap_dim(dim, x.dim(), "argmax");
  RESIN_CHECK(x.size(dim) > 0, "argmax: dim ", dim, " is empty");
  // Move `dim` last (the other dims keep their order), then scan rows.
  std::vector<int64_t> order;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != dim) order.push_back(i);
  order.push_back(dim);
  Tensor xc = x.detach().permute(order).contiguous();
  const int64_t len = xc.size(-1), rows = xc.numel() / len;
  Shape s = xc.shape();
  s.erase(s.size() - 1);
  Tensor out = empty(s, {.dtype = DType::i64});
  const auto v = xc.to_vector();  // on the host, also for device tensors (no argmax kernel)
  int64_t* op = out.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const auto* row = v.data() + r * len;
    op[r] = std::max_element(row, row + len) - row;
  }
  return out.to(x.device());
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  RESIN_CHECK(lead >= 0, "sum_to: cannot sum ", x.shape(), " to ", shape);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && x.size(d) != 1)) dims.push_back(d);
  Tensor s = dims.empty() ? x : sum(x, dims, true);
  return s.reshape(shape);
}

}  // namespace resin
