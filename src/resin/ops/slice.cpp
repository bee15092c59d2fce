// Strided slicing (x[:, :, ::2, ::2] — the subsampling of option-A shortcuts), as a view.
#include "resin/ops/detail.h"

namespace resin {
using namespace detail;

namespace {
struct SliceBackward : Node {
  Shape in_shape;
  int64_t dim = 0, start = 0, step = 1;
  MemoryFormat format = MemoryFormat::contiguous;
  std::string name() const override { return "SliceBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = zeros_in(in_shape, like(g[0]), format);
    Tensor window = make_view(gx, g[0].shape(), [&] {
      Strides st = gx.strides();
      st[dim] *= step;
      return st;
    }(), start * gx.stride(dim));
    be(gx).copy(g[0], window);
    return {gx};
  }
};
}  // namespace

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  RESIN_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape();
  s[d] = (end - start + step - 1) / step;
  Strides st = strides();
  st[d] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * stride(d));
  if (autograd::any_requires_grad({this})) {
    auto node = std::make_shared<SliceBackward>();
    node->in_shape = shape();
    node->dim = d;
    node->start = start;
    node->step = step;
    node->format = grad_format(*this);
    record(node, {this}, {&out});
  }
  return out;
}

}  // namespace resin
