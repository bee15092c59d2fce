// View and shape ops. Views share storage and record a backward node that maps the gradient back
// onto the input's geometry.
#include <algorithm>
#include <numeric>

#include "resin/core/cuda.h"
#include "resin/ops/detail.h"

namespace resin {
using namespace detail;

namespace {

struct ReshapeBackward : Node {
  Shape in_shape;
  std::string name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {g[0].reshape(in_shape)}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inverse;
  std::string name() const override { return "PermuteBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {g[0].permute(inverse)}; }
};

// Gradient of a strided window (narrow, pad crop): zeros with g written into the window.
struct NarrowBackward : Node {
  Shape in_shape;
  int64_t dim = 0, start = 0;
  MemoryFormat format = MemoryFormat::contiguous;
  std::string name() const override { return "NarrowBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = zeros_in(in_shape, like(g[0]), format);
    be(gx).copy(g[0], gx.narrow(dim, start, g[0].size(dim)));
    return {gx};
  }
};

struct ExpandBackward : Node {
  Shape in_shape;
  std::string name() const override { return "ExpandBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {sum_to(g[0], in_shape)}; }
};

struct CopyBackward : Node {  // contiguous / clone / dtype conversion
  DType in_dtype = DType::f32;
  std::string name() const override { return "CopyBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    return {g[0].dtype() == in_dtype ? g[0] : g[0].to(in_dtype)};
  }
};

struct ToDeviceBackward : Node {
  Device in_device;
  std::string name() const override { return "ToDeviceBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {g[0].to(in_device)}; }
};

struct ConcatBackward : Node {
  int64_t dim = 0;
  std::vector<int64_t> sizes;
  std::string name() const override { return "ConcatBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    std::vector<Tensor> out;
    int64_t start = 0;
    for (int64_t s : sizes) {
      out.push_back(g[0].narrow(dim, start, s));
      start += s;
    }
    return out;
  }
};

struct PadBackward : Node {
  Shape in_shape;
  std::vector<int64_t> lo;  // per dim, may be negative (crop)
  MemoryFormat format = MemoryFormat::contiguous;
  std::string name() const override { return "PadBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = zeros_in(in_shape, like(g[0]), format);
    Tensor src = g[0], dst = gx;
    for (size_t d = 0; d < lo.size(); ++d) {
      const int64_t in_start = std::max<int64_t>(0, -lo[d]);
      const int64_t out_start = std::max<int64_t>(0, lo[d]);
      const int64_t len = std::min(in_shape[d] - in_start, g[0].size(static_cast<int64_t>(d)) - out_start);
      if (len <= 0) return {gx};
      src = src.narrow(static_cast<int64_t>(d), out_start, len);
      dst = dst.narrow(static_cast<int64_t>(d), in_start, len);
    }
    be(gx).copy(src, dst);
    return {gx};
  }
};

}  // namespace

Tensor Tensor::reshape(const Shape& requested) const {
  // Resolve a single -1. The product of the known sizes is checked: sizes from a file (ONNX
  // Reshape) could otherwise wrap around to this tensor's element count.
  Shape s = requested;
  int64_t infer = -1, known = 1;
  bool has_zero = false, overflow = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      RESIN_CHECK(infer < 0, "reshape: only one dimension can be -1, got ", requested);
      infer = static_cast<int64_t>(i);
    } else {
      RESIN_CHECK(s[i] >= 0, "reshape: invalid size in ", requested);
      has_zero = has_zero || s[i] == 0;
      overflow = overflow || __builtin_mul_overflow(known, s[i], &known);
    }
  }
  if (has_zero) known = 0;  // the true product, whatever the other sizes
  RESIN_CHECK(!overflow || has_zero, "reshape: cannot reshape tensor of shape ", shape(), " into ", requested,
              ": the element count overflows int64");
  if (infer >= 0) {
    RESIN_CHECK(known != 0 && numel() % known == 0, "reshape: cannot reshape ", shape(), " into ", requested);
    s[static_cast<size_t>(infer)] = numel() / known;
  }
  RESIN_CHECK((infer >= 0 ? known * s[static_cast<size_t>(infer)] : known) == numel(),
              "reshape: cannot reshape tensor of shape ", shape(), " (", numel(), " elements) into ", requested);
  Tensor src = is_contiguous() ? *this : contiguous();
  Tensor out = make_view(src, s, contiguous_strides(s), src.offset());
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<ReshapeBackward>();
    n->in_shape = shape();
    record(n, {this}, {&out});
  }
  return out;
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  Shape s;
  for (int64_t i = 0; i < start; ++i) s.push_back(size(i));
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= size(i);
  s.push_back(m);
  for (int64_t i = end + 1; i < dim(); ++i) s.push_back(size(i));
  return reshape(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  RESIN_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute: expected ", dim(), " dims in the order, got ",
              order.size());
  std::vector<int64_t> inverse(order.size(), -1);
  Shape s;
  Strides st;
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = wrap_dim(order[i], dim(), "permute");
    RESIN_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated");
    inverse[d] = static_cast<int64_t>(i);
    s.push_back(size(d));
    st.push_back(stride(d));
  }
  Tensor out = make_view(*this, s, st, offset());
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<PermuteBackward>();
    n->inverse = inverse;
    record(n, {this}, {&out});
  }
  return out;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  a = wrap_dim(a, dim(), "transpose");
  b = wrap_dim(b, dim(), "transpose");
  if (dim() == 0) return *this;  // dims 0 / -1 of a 0-d tensor name the tensor itself
  std::swap(order[a], order[b]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  // `length <= size - start`: `start + length` could overflow for a length read from a file.
  int64_t end = 0;
  const bool end_fits = !__builtin_add_overflow(start, length, &end);
  RESIN_CHECK(start >= 0 && length >= 0 && length <= size(d) - start, "narrow: range [", start, ", ",
              end_fits ? std::to_string(end) : str_cat(start, " + ", length), ") out of bounds for dim ", d,
              " of size ", size(d));
  Shape s = shape();
  s[d] = length;
  Tensor out = make_view(*this, s, strides(), offset() + start * stride(d));
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<NarrowBackward>();
    n->in_shape = shape();
    n->dim = d;
    n->start = start;
    n->format = grad_format(*this);
    record(n, {this}, {&out});
  }
  return out;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  RESIN_CHECK(index >= -size(d) && index < size(d), "select: index ", index, " out of range for dim ", d,
              " of size ", size(d));
  if (index < 0) index += size(d);
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  RESIN_CHECK(target.size() >= shape().size(), "expand: cannot expand ", shape(), " to fewer dims ", target);
  const size_t lead = target.size() - shape().size();
  Strides st(std::vector<int64_t>(target.size(), 0));
  Shape s = target;
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      RESIN_CHECK(target[i] >= 0, "expand: invalid size in ", target);
      continue;
    }
    const int64_t have = shape()[i - lead];
    RESIN_CHECK(target[i] >= -1, "expand: invalid size ", target[i], " in ", target,
                " (expected >= 0, or -1 to keep)");
    if (target[i] == -1 || target[i] == have) {
      s[i] = have;
      st[i] = strides()[i - lead];
    } else {
      RESIN_CHECK(have == 1, "expand: cannot expand ", shape(), " to ", target, " (dim ", i, ")");
      st[i] = 0;
    }
  }
  if (s == shape()) return *this;
  Tensor out = make_view(*this, s, st, offset());
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<ExpandBackward>();
    n->in_shape = shape();
    record(n, {this}, {&out});
  }
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(static_cast<size_t>(d), 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (size(d) != 1) return *this;
  Shape s = shape();
  s.erase(static_cast<size_t>(d));
  // A size-1 dim can be dropped without copying, whatever the layout.
  Strides st = strides();
  st.erase(static_cast<size_t>(d));
  Tensor out = make_view(*this, s, st, offset());
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<ReshapeBackward>();
    n->in_shape = shape();
    record(n, {this}, {&out});
  }
  return out;
}

namespace {
Tensor copy_to(const Tensor& x, DType dtype, MemoryFormat f) {
  Tensor out = f == MemoryFormat::channels_last
                   ? empty_strided(x.shape(), channels_last_strides(x.shape()), like(x, dtype))
                   : empty(x.shape(), like(x, dtype));
  backend::backend_for(x.dtype() == DType::f32 || dtype != DType::f32 ? x : out).copy(x, out);
  if (autograd::any_requires_grad({&x})) {
    RESIN_CHECK(is_floating(dtype), "to: cannot track gradients through a conversion to ", dtype);
    auto n = std::make_shared<CopyBackward>();
    n->in_dtype = x.dtype();
    record(n, {&x}, {&out});
  }
  return out;
}
}  // namespace

Tensor Tensor::contiguous(MemoryFormat f) const {
  if (f == MemoryFormat::contiguous && is_contiguous()) return *this;
  if (f == MemoryFormat::channels_last) {
    RESIN_CHECK(dim() == 4, "contiguous(channels_last): expected a 4-D tensor, got shape ", shape());
    if (is_channels_last()) return *this;
  }
  return copy_to(*this, dtype(), f);
}

Tensor Tensor::clone(MemoryFormat f) const { return copy_to(*this, dtype(), f); }

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  return copy_to(*this, t, suggest_memory_format());
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  try {
    cuda::check_device(d);
  } catch (const Error& e) {
    RESIN_FAIL("to: ", e.what());
  }
  // A dense tensor moves as one block and keeps its layout (channels-last stays channels-last);
  // anything else is made contiguous on its own device first.
  const Tensor src = is_non_overlapping_dense() ? detach() : detach().contiguous();
  Tensor out = empty_strided(shape(), src.strides(), {.dtype = dtype(), .device = d});
  if (numel() > 0)
    cuda::raw::copy(out.raw_data(), d, src.raw_data(), device(), static_cast<size_t>(numel()) * dtype_size(dtype()));
  if (autograd::any_requires_grad({this})) {
    auto n = std::make_shared<ToDeviceBackward>();
    n->in_device = device();
    record(n, {this}, {&out});
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  RESIN_CHECK(!xs.empty(), "concat: expected at least one tensor");
  const Tensor& first = xs[0];
  check_defined(first, "concat", "tensor 0");
  RESIN_CHECK(first.dim() > 0, "concat: expected tensors with at least 1 dim, got shape ", first.shape());
  dim = wrap_dim(dim, first.dim(), "concat");
  Shape s = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_same_dtype(first, xs[i], "concat");
    RESIN_CHECK(xs[i].dim() == first.dim(), "concat: tensor ", i, " has ", xs[i].dim(), " dims, expected ",
                first.dim());
    for (int64_t d = 0; d < first.dim(); ++d)
      RESIN_CHECK(d == dim || xs[i].size(d) == first.size(d), "concat: tensor ", i, " has shape ", xs[i].shape(),
                  ", incompatible with ", first.shape(), " outside dim ", dim);
    total += xs[i].size(dim);
  }
  s[dim] = total;
  Tensor out = empty_like(empty(s, like(first)),
                          first.dim() == 4 ? first.suggest_memory_format() : MemoryFormat::contiguous);
  be(out).concat(xs, out, dim);
  if (autograd::any_requires_grad(xs)) {
    auto n = std::make_shared<ConcatBackward>();
    n->dim = dim;
    std::vector<const Tensor*> ins;
    for (const Tensor& x : xs) {
      n->sizes.push_back(x.size(dim));
      ins.push_back(&x);
    }
    record(n, ins, {&out});
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  RESIN_CHECK(!xs.empty(), "stack: expected at least one tensor");
  dim = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < xs.size(); ++i) {
    RESIN_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " has shape ", xs[i].shape(), ", expected ",
                xs[0].shape());
    u.push_back(xs[i].unsqueeze(dim));
  }
  return concat(u, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "split");
  RESIN_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  std::vector<Tensor> out;
  for (int64_t s = 0; s < x.size(dim); s += split_size)
    out.push_back(x.narrow(dim, s, std::min(split_size, x.size(dim) - s)));
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  RESIN_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  dim = wrap_dim(dim, x.dim(), "chunk");
  return split(x, std::max<int64_t>(1, (x.size(dim) + chunks - 1) / chunks), dim);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& amounts, double value) {
  check_floating(x, "pad");
  RESIN_CHECK(amounts.size() % 2 == 0 && static_cast<int64_t>(amounts.size()) <= 2 * x.dim(),
              "pad: expected an even number of amounts, at most 2 per dim (", 2 * x.dim(), "), got ", amounts.size());
  std::vector<int64_t> lo(static_cast<size_t>(x.dim()), 0), hi(static_cast<size_t>(x.dim()), 0);
  for (size_t i = 0; i < amounts.size() / 2; ++i) {
    const size_t d = static_cast<size_t>(x.dim()) - 1 - i;
    lo[d] = amounts[2 * i];
    hi[d] = amounts[2 * i + 1];
  }
  Shape s = x.shape();
  for (size_t d = 0; d < s.size(); ++d) {
    s[d] += lo[d] + hi[d];
    RESIN_CHECK(s[d] >= 0, "pad: padding ", amounts.size() ? "" : "", "makes dim ", d, " negative (", s[d], ")");
  }
  Tensor out = empty_like(empty(s, like(x)), x.dim() == 4 ? x.suggest_memory_format() : MemoryFormat::contiguous);
  be(out).fill(out, value);
  Tensor src = x, dst = out;
  bool empty_overlap = false;
  for (size_t d = 0; d < s.size(); ++d) {
    const int64_t in_start = std::max<int64_t>(0, -lo[d]), out_start = std::max<int64_t>(0, lo[d]);
    const int64_t len = std::min(x.size(static_cast<int64_t>(d)) - in_start, s[d] - out_start);
    if (len <= 0) {
      empty_overlap = true;
      break;
    }
    src = make_view(src, src.shape(), src.strides(), src.offset());
    Shape ss = src.shape(), ds = dst.shape();
    ss[d] = len;
    ds[d] = len;
    src = make_view(src, ss, src.strides(), src.offset() + in_start * src.stride(static_cast<int64_t>(d)));
    dst = make_view(dst, ds, dst.strides(), dst.offset() + out_start * dst.stride(static_cast<int64_t>(d)));
  }
  if (!empty_overlap) be(out).copy(src, dst);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<PadBackward>();
    n->in_shape = x.shape();
    n->lo = lo;
    n->format = grad_format(x);
    record(n, {&x}, {&out});
  }
  return out;
}

}  // namespace resin
