// Shape, indexing, constant and type ops of the interpreter.
#include <algorithm>
#include <limits>

#include "resin/onnx/ops.h"

namespace resin::onnx {

namespace {

using Ins = std::vector<Tensor>;
using Outs = std::vector<Tensor>;
using Ints = std::vector<int64_t>;

Outs reshape_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  Ints shape = c.opset() >= 5 ? int_values(need(c, in, 1, "shape"), "Reshape: shape") : c.ints("shape");
  const bool allowzero = c.i("allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 0 || allowzero) continue;
    if (static_cast<int64_t>(i) >= x.dim()) c.fail(str_cat("shape ", Shape(shape), " copies dim ", i, " of ", x.shape()));
    shape[i] = x.size(static_cast<int64_t>(i));
  }
  // Sizes from the file: valid ones only, and a product that cannot wrap around (the -1 and the
  // zeros of allowzero count as 1 here; Tensor::reshape checks the rest).
  int64_t known = 1;
  for (int64_t d : shape)
    if (d < -1 || __builtin_mul_overflow(known, std::max<int64_t>(d, 1), &known))
      c.fail(str_cat("invalid shape ", Shape(shape), " for input ", x.shape()));
  return {x.reshape(Shape(shape))};
}

Outs flatten_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "input");
  int64_t a = c.i("axis", 1);
  if (a < -x.dim() || a > x.dim()) c.fail(str_cat("axis ", a, " out of range for rank ", x.dim()));
  if (a < 0) a += x.dim();
  int64_t rows = 1, cols = 1;
  for (int64_t d = 0; d < a; ++d) rows *= x.size(d);
  for (int64_t d = a; d < x.dim(); ++d) cols *= x.size(d);  // not numel / rows: rows may be 0
  return {x.reshape({rows, cols})};
}

Outs transpose_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  Ints perm;
  for (int64_t d = x.dim() - 1; d >= 0; --d) perm.push_back(d);
  perm = c.ints("perm", perm);
  Ints sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i)
    if (sorted[i] != static_cast<int64_t>(i) || sorted.size() != static_cast<size_t>(x.dim()))
      c.fail(str_cat("perm ", Shape(perm), " is not a permutation of the ", x.dim(), " dims"));
  return {x.permute(perm)};
}

Outs concat_op(const OpContext& c, const Ins& in) {
  if (in.empty()) c.fail("expected at least one input");
  for (size_t i = 0; i < in.size(); ++i) need(c, in, i, "input");
  return {concat(in, axis(c, c.i("axis"), in[0].dim()))};
}

Outs split_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "input");
  const int64_t a = axis(c, c.i("axis", 0), x.dim()), n = x.size(a);
  const int64_t outs = static_cast<int64_t>(c.num_outputs());
  Ints sizes = c.opset() >= 13 ? (in.size() > 1 && in[1].defined() ? int_values(in[1], "Split: split") : Ints{})
                                : c.ints("split", {});
  if (sizes.empty()) {
    if (outs == 0 || n % outs != 0) c.fail(str_cat("cannot split ", n, " evenly into ", outs, " outputs"));
    sizes.assign(static_cast<size_t>(outs), n / outs);
  }
  int64_t total = 0;
  for (int64_t s : sizes) {  // compared with what is left, so file values cannot overflow the sum
    if (s < 0 || s > n - total) c.fail(str_cat("split sizes ", Shape(sizes), " do not fit dim ", a, " of size ", n));
    total += s;
  }
  if (total != n || static_cast<int64_t>(sizes.size()) != outs)
    c.fail(str_cat("split sizes ", Shape(sizes), " must sum to ", n, " and give ", outs, " outputs"));
  Outs out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(a, start, s));
    start += s;
  }
  return out;
}

Outs gather_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  const Tensor& idx = need(c, in, 1, "indices");
  if (idx.dtype() != DType::i64 && idx.dtype() != DType::i32) c.fail(str_cat("indices must be integers, got ", idx.dtype()));
  if (x.dim() == 0) c.fail("data must have at least one dim");
  const int64_t a = axis(c, c.i("axis", 0), x.dim()), n = x.size(a);
  std::vector<double> fixed;
  for (int64_t i : idx.values<int64_t>()) {
    if (i < -n || i >= n) c.fail(str_cat("index ", i, " is out of range for dim ", a, " of size ", n));
    fixed.push_back(static_cast<double>(i < 0 ? i + n : i));
  }
  if (idx.dim() == 0) return {x.select(a, static_cast<int64_t>(fixed[0]))};
  Shape out = idx.shape();
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != a) out.push_back(x.size(d));
  check_size(c, out, "the output");
  return {take(x, a, from_vector(fixed, idx.shape(), {.dtype = DType::i64}))};
}

Outs slice_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  Ints starts, ends, axes, steps;
  if (c.opset() >= 10) {
    starts = int_values(need(c, in, 1, "starts"), "Slice: starts");
    ends = int_values(need(c, in, 2, "ends"), "Slice: ends");
    if (in.size() > 3 && in[3].defined()) axes = int_values(in[3], "Slice: axes");
    if (in.size() > 4 && in[4].defined()) steps = int_values(in[4], "Slice: steps");
  } else {
    starts = c.ints("starts");
    ends = c.ints("ends");
    axes = c.ints("axes", {});
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts, ends, axes and steps must have one value per sliced axis");
  Tensor y = x;
  std::vector<bool> seen(static_cast<size_t>(x.dim()), false);
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = axis(c, axes[i], x.dim()), n = x.size(a), step = steps[i];
    if (seen[static_cast<size_t>(a)]) c.fail(str_cat("axis ", a, " is sliced twice"));
    seen[static_cast<size_t>(a)] = true;
    if (step == 0) c.fail("steps must be non-zero");
    auto wrap = [n](int64_t v) { return v < 0 ? (v < -n ? -1 : v + n) : v; };
    int64_t s = wrap(starts[i]), e = wrap(ends[i]);
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      y = y.slice(a, s, std::max(s, e), std::min(step, n + 1));  // larger steps take one element
      continue;
    }
    // Negative step: ONNX clamps start to [0, n-1] and end to [-1, n-1]; the indices are listed.
    std::vector<double> idx;
    if (n == 0) {
      y = y.narrow(a, 0, 0);
      continue;
    }
    s = std::clamp<int64_t>(s, 0, n - 1);
    e = std::clamp<int64_t>(e, -1, n - 1);
    for (int64_t j = s; j > e; j += step) idx.push_back(static_cast<double>(j));
    if (idx.empty()) {
      y = y.narrow(a, 0, 0);
      continue;
    }
    y = take(y, a, from_vector(idx, {static_cast<int64_t>(idx.size())}, {.dtype = DType::i64}));
  }
  return {y};
}

Ints axes_arg(const OpContext& c, const Ins& in, bool required) {
  if (c.opset() >= 13) {
    if (in.size() > 1 && in[1].defined()) return int_values(in[1], "axes");
    if (required) c.fail("input 1 (axes) is missing");
    return {};
  }
  return required ? c.ints("axes") : c.ints("axes", {});
}

Outs squeeze_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  Ints axes = axes_arg(c, in, false);
  for (auto& a : axes) a = axis(c, a, x.dim());
  if (axes.empty())
    for (int64_t d = 0; d < x.dim(); ++d)
      if (x.size(d) == 1) axes.push_back(d);
  std::sort(axes.rbegin(), axes.rend());
  Tensor y = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    if (i > 0 && axes[i] == axes[i - 1]) c.fail("repeated axis");
    if (y.size(axes[i]) != 1) c.fail(str_cat("cannot squeeze dim ", axes[i], " of size ", y.size(axes[i])));
    y = y.squeeze(axes[i]);
  }
  return {y};
}

Outs unsqueeze_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  Ints axes = axes_arg(c, in, true);
  const int64_t r = x.dim() + static_cast<int64_t>(axes.size());
  for (auto& a : axes) a = axis(c, a, r);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) c.fail("repeated axis");
  Tensor y = x;
  for (int64_t a : axes) y = y.unsqueeze(a);
  return {y};
}

Outs expand_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "input");
  const Ints shape = int_values(need(c, in, 1, "shape"), "Expand: shape");
  for (int64_t d : shape)
    if (d < 0) c.fail(str_cat("negative size in shape ", Shape(shape)));
  const Shape out = broadcast_shapes(x.shape(), Shape(shape), "Expand");
  check_size(c, out, "the output");
  return {x.expand(out)};
}

Outs shape_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  const int64_t r = x.dim();
  auto clampdim = [r](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
  const int64_t s = clampdim(c.i("start", 0)), e = clampdim(c.i("end", r));
  Ints dims;
  for (int64_t d = s; d < e; ++d) dims.push_back(x.size(d));
  return {from_data(dims, Shape{static_cast<int64_t>(dims.size())})};
}

Outs constant_op(const OpContext& c, const Ins&) {
  if (c.has("value")) return {c.tensor("value")};
  if (c.has("value_float")) return {scalar_tensor(c.f("value_float", 0))};
  if (c.has("value_floats")) {
    const auto v = c.floats("value_floats", {});
    return {from_vector(v, {static_cast<int64_t>(v.size())})};
  }
  if (c.has("value_int")) return {from_data(Ints{c.i("value_int")}, Shape{})};  // exact, not through double
  if (c.has("value_ints")) {
    const auto v = c.ints("value_ints");
    return {from_data(v, Shape{static_cast<int64_t>(v.size())})};
  }
  c.fail("only value, value_float(s) and value_int(s) are supported (no sparse or string constants)");
}

Outs constant_of_shape(const OpContext& c, const Ins& in) {
  const Ints shape = int_values(need(c, in, 0, "input"), "ConstantOfShape: input");
  for (int64_t d : shape)
    if (d < 0) c.fail(str_cat("negative size in shape ", Shape(shape)));
  check_size(c, Shape(shape), "the output");
  Tensor v = c.has("value") ? c.tensor("value") : scalar_tensor(0.0);
  if (v.numel() != 1) c.fail("value must hold one element");
  // The value's bytes broadcast (not v.item(), whose double rounds int64 values above 2^53).
  return {v.reshape(Shape{}).expand(Shape(shape)).clone()};
}

Outs cast_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "input");
  const int64_t to = c.i("to");
  DType t;
  switch (to) {
    case 1: t = DType::f32; break;
    case 2: t = DType::u8; break;
    case 6: t = DType::i32; break;
    case 7: t = DType::i64; break;
    case 11: t = DType::f64; break;
    case 16: t = DType::bf16; break;
    case 10:
      t = DType::f16;
      break;
    default:
      c.fail(str_cat("casting to ONNX type ", to,
                     " is not supported (FLOAT, DOUBLE, INT64, INT32, UINT8, BFLOAT16, FLOAT16)"));
  }
  return {x.to(t)};
}

}  // namespace

// Embedding rows of x moved to the front for floating tensors, an exact gather by value for
// integer ones.
Tensor take(const Tensor& x, int64_t a, const Tensor& idx) {
  const int64_t r = x.dim(), k = idx.dim();
  Ints front{a};
  for (int64_t d = 0; d < r; ++d)
    if (d != a) front.push_back(d);
  Tensor xf = x.permute(front);
  Shape rest(xf.shape().begin() + 1, xf.shape().end());
  Tensor rows;
  if (is_floating(x.dtype())) {
    rows = embedding(idx.to(DType::i64), xf.reshape({x.size(a), rest.numel()}));
  } else {  // integer data (shape arithmetic): gather by value
    // Exact: built as int64 (not through double, which rounds above 2^53), then narrowed back.
    const auto v = xf.contiguous().values<int64_t>();
    const auto iv = idx.values<int64_t>();
    std::vector<int64_t> out;
    for (int64_t i : iv)
      for (int64_t j = 0; j < rest.numel(); ++j) out.push_back(v[static_cast<size_t>(i * rest.numel() + j)]);
    Shape s = idx.shape();
    s.push_back(rest.numel());
    rows = from_data(out, s).to(x.dtype());
  }
  Shape s = idx.shape();
  for (int64_t d : rest) s.push_back(d);
  rows = rows.reshape(s);  // [idx..., x dims before a..., x dims after a...]
  Ints perm;
  for (int64_t d = 0; d < a; ++d) perm.push_back(k + d);
  for (int64_t d = 0; d < k; ++d) perm.push_back(d);
  for (int64_t d = a + 1; d < r; ++d) perm.push_back(k + d - 1);
  return rows.permute(perm);
}

void add_shape_ops(OpTable& t) {
  t["Reshape"] = reshape_op;
  t["Flatten"] = flatten_op;
  t["Transpose"] = transpose_op;
  t["Concat"] = concat_op;
  t["Split"] = split_op;
  t["Slice"] = slice_op;
  t["Gather"] = gather_op;
  t["Squeeze"] = squeeze_op;
  t["Unsqueeze"] = unsqueeze_op;
  t["Expand"] = expand_op;
  t["Shape"] = shape_op;
  t["Constant"] = constant_op;
  t["ConstantOfShape"] = constant_of_shape;
  t["Cast"] = cast_op;
  t["Identity"] = [](const OpContext& c, const Ins& in) -> Outs { return {need(c, in, 0, "input")}; };
}

}  // namespace resin::onnx
