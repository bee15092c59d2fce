// Convolution, pooling, normalisation, dropout and padding ops of the interpreter (2-D spatial
// ops: inputs [N, C, H, W]).
#include <cmath>
#include <limits>

#include "resin/autograd/grad_mode.h"
#include "resin/onnx/import.h"
#include "resin/onnx/ops.h"

namespace resin::onnx {

namespace {

using Ins = std::vector<Tensor>;
using Outs = std::vector<Tensor>;
using Ints = std::vector<int64_t>;

// Begin/end padding of the two spatial dims: {top, left, bottom, right}.
struct Pads {
  int64_t t = 0, l = 0, b = 0, r = 0;
  bool symmetric() const { return t == b && l == r; }
};

void check_4d(const OpContext& c, const Tensor& x) {
  if (x.dim() != 4)
    c.fail(str_cat("only 1-D and 2-D spatial inputs ([N, C, L], [N, C, H, W]) are supported, got shape ", x.shape()));
}

// ONNX's explicit pads or auto_pad for kernel k, stride s, dilation d over H and W.
Pads spatial_pads(const OpContext& c, const Tensor& x, const Ints& k, const Ints& s, const Ints& d) {
  const std::string mode = c.s("auto_pad", "NOTSET");
  Pads p;
  if (mode == "NOTSET") {
    const Ints v = c.ints("pads", {0, 0, 0, 0});
    if (v.size() != 4) c.fail(str_cat("pads must have 4 values for 2-D inputs, got ", v.size()));
    for (int64_t a : v)
      if (a < 0 || a > kMaxSpatial) c.fail(str_cat("pads must be in [0, ", kMaxSpatial, "], got ", a));
    return {v[0], v[1], v[2], v[3]};
  }
  if (mode == "VALID") return p;
  if (mode != "SAME_UPPER" && mode != "SAME_LOWER") c.fail("unknown auto_pad '" + mode + "'");
  int64_t* begin[2] = {&p.t, &p.l};
  int64_t* end[2] = {&p.b, &p.r};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t in = x.size(static_cast<int64_t>(i) + 2), out = (in + s[i] - 1) / s[i];
    const int64_t total = std::max<int64_t>(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in);
    *begin[i] = mode == "SAME_UPPER" ? total / 2 : total - total / 2;
    *end[i] = total - *begin[i];
  }
  return p;
}

Ints pair_attr(const OpContext& c, const std::string& name, const Ints& def) {
  Ints v = c.ints(name, def);
  if (v.size() != 2) c.fail(str_cat(name, " must have 2 values for 2-D inputs, got ", v.size()));
  for (int64_t a : v)
    if (a <= 0 || a > kMaxSpatial) c.fail(str_cat(name, " must be in [1, ", kMaxSpatial, "], got ", a));
  return v;
}

Tensor pad_hw(const Tensor& x, const Pads& p, double value) {
  if (p.t == 0 && p.l == 0 && p.b == 0 && p.r == 0) return x;
  return pad(x, {p.l, p.r, p.t, p.b}, value);
}

// 1-D ops run as 2-D ones over [N, C, 1, L]: spatial attributes gain a leading unit dim and the
// first `lift` inputs (X, and W for Conv) a unit H.
Outs run_lifted(const OpContext& c, const Ins& in, Outs (*f)(const OpContext&, const Ins&), size_t lift) {
  Node n = c.node();
  for (auto& a : n.attrs) {
    auto* v = std::get_if<Ints>(&a.value);
    if (!v) continue;
    if ((a.name == "kernel_shape" || a.name == "strides" || a.name == "dilations") && v->size() == 1)
      v->insert(v->begin(), 1);
    else if (a.name == "pads" && v->size() == 2)
      *v = {0, (*v)[0], 0, (*v)[1]};
  }
  const OpContext c2(n, c.opset(), c.training());
  Ins in2 = in;
  for (size_t i = 0; i < lift && i < in2.size(); ++i)
    if (in2[i].defined()) in2[i] = in2[i].unsqueeze(2);
  Outs out = f(c2, in2);
  for (auto& t : out)
    if (t.defined()) t = t.squeeze(2);
  return out;
}

Outs conv(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  if (x.dim() == 3) return run_lifted(c, in, conv, 2);
  const Tensor& w = need(c, in, 1, "W");
  const Tensor b = in.size() > 2 ? in[2] : Tensor();
  check_4d(c, x);
  if (w.dim() != 4) c.fail(str_cat("W must be [M, C/group, kH, kW], got ", w.shape()));
  const Ints k = pair_attr(c, "kernel_shape", {w.size(2), w.size(3)});
  if (k[0] != w.size(2) || k[1] != w.size(3)) c.fail(str_cat("kernel_shape ", Shape(k), " disagrees with W ", w.shape()));
  const Ints s = pair_attr(c, "strides", {1, 1}), d = pair_attr(c, "dilations", {1, 1});
  const Pads p = spatial_pads(c, x, k, s, d);
  const bool sym = p.symmetric();
  const int64_t oh = (x.size(2) + p.t + p.b - d[0] * (k[0] - 1) - 1) / s[0] + 1;
  const int64_t ow = (x.size(3) + p.l + p.r - d[1] * (k[1] - 1) - 1) / s[1] + 1;
  check_size(c, {x.size(0), w.size(0), std::max<int64_t>(oh, 0), std::max<int64_t>(ow, 0)}, "the output");
  check_size(c, {x.size(0), x.size(1), x.size(2) + p.t + p.b, x.size(3) + p.l + p.r}, "the padded input");
  return {conv2d(sym ? x : pad_hw(x, p, 0.0), w, b,
                 {.stride = s, .padding = sym ? Ints{p.t, p.l} : Ints{0, 0}, .dilation = d, .groups = c.i("group", 1)})};
}

// Pooling geometry shared by MaxPool and AveragePool: pads including the ceil_mode extension.
struct PoolGeometry {
  Ints k, s;
  Pads p;      // explicit pads
  Pads extra;  // ceil_mode's extension at the end (never counted as padding)
};

PoolGeometry pool_geometry(const OpContext& c, const Tensor& x) {
  check_4d(c, x);
  if (c.wants_output(1)) c.fail("the Indices output is not supported");
  PoolGeometry g;
  g.k = pair_attr(c, "kernel_shape", {});
  g.s = pair_attr(c, "strides", {1, 1});
  const Ints d = pair_attr(c, "dilations", {1, 1});
  if (d[0] != 1 || d[1] != 1) c.fail("dilated pooling is not supported");
  g.p = spatial_pads(c, x, g.k, g.s, d);
  const int64_t pb[2] = {g.p.t, g.p.l}, pe[2] = {g.p.b, g.p.r};
  int64_t* extra[2] = {&g.extra.b, &g.extra.r};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t span = x.size(static_cast<int64_t>(i) + 2) + pb[i] + pe[i] - g.k[i];
    if (span < 0) c.fail(str_cat("kernel ", Shape(g.k), " is larger than the padded input ", x.shape()));
    if (c.i("ceil_mode", 0) && span % g.s[i] != 0) *extra[i] = g.s[i] - span % g.s[i];
  }
  check_size(c, {x.size(0), x.size(1), x.size(2) + g.p.t + g.p.b + g.extra.b, x.size(3) + g.p.l + g.p.r + g.extra.r},
             "the padded input");
  return g;
}

bool fast_pool(const PoolGeometry& g) {
  return g.p.symmetric() && g.extra.b == 0 && g.extra.r == 0 && g.p.t <= g.k[0] / 2 && g.p.l <= g.k[1] / 2;
}

Outs max_pool(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  if (x.dim() == 3) return run_lifted(c, in, max_pool, 1);
  if (!is_floating(x.dtype())) {
    // Integer images through a floating type that holds them: u8 in f32, i32 in f64; i64 only
    // up to 2^53 in magnitude (larger values round).
    Outs out = max_pool(c, {x.to(x.dtype() == DType::u8 ? DType::f32 : DType::f64)});
    return {out[0].to(x.dtype())};
  }
  const PoolGeometry g = pool_geometry(c, x);
  if (fast_pool(g)) return {max_pool2d(x, {.kernel = g.k, .stride = g.s, .padding = {g.p.t, g.p.l}})};
  const double ninf = -std::numeric_limits<double>::infinity();
  Tensor xp = pad_hw(x, {g.p.t, g.p.l, g.p.b + g.extra.b, g.p.r + g.extra.r}, ninf);
  return {max_pool2d(xp, {.kernel = g.k, .stride = g.s, .padding = {0, 0}})};
}

Outs avg_pool(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  if (x.dim() == 3) return run_lifted(c, in, avg_pool, 1);
  const PoolGeometry g = pool_geometry(c, x);
  const bool include_pad = c.i("count_include_pad", 0) != 0;
  if (fast_pool(g))
    return {avg_pool2d(x, {.kernel = g.k, .stride = g.s, .padding = {g.p.t, g.p.l}, .count_include_pad = include_pad})};
  // Average over all k·k positions of zero-padded x, rescaled by k·k / (positions that count):
  // the real elements, plus the explicit pads when count_include_pad (ceil_mode's extension never).
  const Pads all{g.p.t, g.p.l, g.p.b + g.extra.b, g.p.r + g.extra.r};
  const Pool2dOptions o{.kernel = g.k, .stride = g.s, .padding = {0, 0}};
  Tensor sum_avg = avg_pool2d(pad_hw(x, all, 0.0), o);
  Tensor count;
  {
    NoGradGuard ng;
    Tensor mask = ones({1, 1, x.size(2), x.size(3)}, {.dtype = x.dtype()});
    if (include_pad) mask = pad_hw(mask, g.p, 1.0);
    mask = pad_hw(mask, include_pad ? Pads{0, 0, g.extra.b, g.extra.r} : all, 0.0);
    count = avg_pool2d(mask, o);
  }
  return {div(sum_avg, count)};
}

Outs global_pool(const OpContext& c, const Ins& in, bool is_max) {
  const Tensor& x = need(c, in, 0, "X");
  if (x.dim() < 3) c.fail(str_cat("expected [N, C, spatial...], got ", x.shape()));
  if (!is_max && x.dim() == 4) return {adaptive_avg_pool2d(x, 1, 1)};
  Ints dims;
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return {is_max ? max(x, dims, true) : mean(x, dims, true)};
}

Outs batch_norm_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  const Tensor& scale = need(c, in, 1, "scale");
  const Tensor& bias = need(c, in, 2, "B");
  const Tensor& rmean = need(c, in, 3, "input_mean");
  const Tensor& rvar = need(c, in, 4, "input_var");
  if (x.dim() < 2) c.fail(str_cat("expected [N, C, ...], got ", x.shape()));
  if (c.opset() < 9 && c.i("spatial", 1) == 0) c.fail("spatial=0 (per-activation statistics) is not supported");
  const double eps = c.f("epsilon", 1e-5), momentum = c.f("momentum", 0.9);
  if (c.i("training_mode", 0)) {
    // ONNX training mode: batch statistics; running statistics returned as outputs 1 and 2, updated
    // with the population variance.
    Ints dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    Tensor y = batch_norm(x, {}, {}, scale, bias, true, 0.0, eps);
    Outs out{y, Tensor(), Tensor()};
    if (c.wants_output(1)) out[1] = add(mul(rmean, momentum), mul(mean(x, dims), 1.0 - momentum));
    if (c.wants_output(2)) out[2] = add(mul(rvar, momentum), mul(var(x, dims, 0), 1.0 - momentum));
    return out;
  }
  if (c.num_outputs() > 1 && (c.wants_output(1) || c.wants_output(2)))
    c.fail("running statistics outputs need training_mode=1");
  // Fine-tuning an imported graph (resin training mode): batch statistics, running statistics
  // updated in place as torch.nn.BatchNorm does (ONNX's momentum weighs the old value).
  return {batch_norm(x, rmean, rvar, scale, bias, c.training(), 1.0 - momentum, eps)};
}

Outs layer_norm_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  const Tensor& scale = need(c, in, 1, "Scale");
  const Tensor b = in.size() > 2 ? in[2] : Tensor();
  const int64_t a = axis(c, c.i("axis", -1), x.dim());
  const double eps = c.f("epsilon", 1e-5);
  const Shape ns(x.shape().begin() + a, x.shape().end());
  Tensor y;
  if (scale.shape() == ns && (!b.defined() || b.shape() == ns)) {
    y = layer_norm(x, ns, scale, b, eps);
  } else {  // broadcastable scale and bias, which must not broadcast the output beyond the limit
    const Shape ys = broadcast_shapes(x.shape(), scale.shape(), "LayerNormalization");
    check_size(c, ys, "the output");
    if (b.defined()) check_size(c, broadcast_shapes(ys, b.shape(), "LayerNormalization"), "the output");
    y = mul(layer_norm(x, ns, {}, {}, eps), scale);
    if (b.defined()) y = add(y, b);
  }
  Outs out{y, Tensor(), Tensor()};
  if (c.wants_output(1) || c.wants_output(2)) {
    Ints dims;
    for (int64_t d = a; d < x.dim(); ++d) dims.push_back(d);
    out[1] = mean(x, dims, true);
    out[2] = rsqrt(add(var(x, dims, 0, true), eps));
  }
  return out;
}

Outs dropout_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  double ratio = c.f("ratio", 0.5);
  bool training = c.training();
  if (c.opset() >= 12) {
    if (in.size() > 1 && in[1].defined()) ratio = in[1].item();
    if (in.size() > 2 && in[2].defined()) training = training || in[2].item() != 0;
  }
  if (!training || ratio == 0) {
    Outs out{x, Tensor()};
    if (c.wants_output(1)) out[1] = ones(x.shape(), {.dtype = DType::u8});
    return out;
  }
  if (!(ratio > 0 && ratio < 1)) c.fail(str_cat("ratio must be in [0, 1), got ", ratio));
  // Inverted dropout with the mask kept for output 1; draws from default_generator().
  const Tensor keep = gt(rand(x.shape(), {.dtype = x.dtype()}), ratio);
  return {mul(x, mul(keep, 1.0 / (1.0 - ratio))), c.wants_output(1) ? keep.to(DType::u8) : Tensor()};
}

// Pad along every dim: constant (any amounts; negative crops), edge or reflect (non-negative).
Outs pad_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "data");
  const std::string mode = c.s("mode", "constant");
  Ints pads;
  double value = 0;
  if (c.opset() >= 11) {
    pads = int_values(need(c, in, 1, "pads"), "Pad: pads");
    if (in.size() > 2 && in[2].defined()) value = in[2].item();
    if (in.size() > 3 && in[3].defined()) c.fail("the axes input is not supported");
  } else {
    pads = c.ints("pads");
    value = c.f("value", 0.0);
  }
  const int64_t r = x.dim();
  if (static_cast<int64_t>(pads.size()) != 2 * r) c.fail(str_cat("expected ", 2 * r, " pads, got ", pads.size()));
  Shape out = x.shape();
  for (int64_t d = 0; d < r; ++d) {
    const int64_t lo = pads[static_cast<size_t>(d)], hi = pads[static_cast<size_t>(d + r)];
    // Compared without std::abs, which is undefined for INT64_MIN (a fuzzed file can hold it).
    const int64_t limit = element_limit();
    if (lo > limit || lo < -limit || hi > limit || hi < -limit)
      c.fail(str_cat("pad ", lo, "/", hi, " is out of range"));
    out[static_cast<size_t>(d)] += lo + hi;
    if (out[static_cast<size_t>(d)] < 0) c.fail(str_cat("pads ", Shape(pads), " make dim ", d, " negative"));
  }
  check_size(c, out, "the padded output");
  if (mode == "constant") {
    Ints amounts;
    for (int64_t d = r - 1; d >= 0; --d) {
      amounts.push_back(pads[static_cast<size_t>(d)]);
      amounts.push_back(pads[static_cast<size_t>(d + r)]);
    }
    return {pad(x, amounts, value)};
  }
  if (mode != "edge" && mode != "reflect") c.fail("unknown mode '" + mode + "'");
  Tensor y = x;
  for (int64_t d = 0; d < r; ++d) {
    const int64_t lo = pads[static_cast<size_t>(d)], hi = pads[static_cast<size_t>(d + r)], n = y.size(d);
    if (lo < 0 || hi < 0) c.fail(mode + " padding needs non-negative pads");
    if (lo == 0 && hi == 0) continue;
    if (n == 0 || (mode == "reflect" && (lo >= n || hi >= n)))
      c.fail(str_cat(mode, " padding of ", lo, "/", hi, " needs more than ", n, " elements in dim ", d));
    if (mode == "edge") {  // the first and last slices, broadcast over the pads
      auto repeat = [&](int64_t at, int64_t count) {
        Shape s = y.shape();
        s[static_cast<size_t>(d)] = count;
        return y.narrow(d, at, 1).expand(s);
      };
      y = concat({repeat(0, lo), y, repeat(n - 1, hi)}, d);
      continue;
    }
    // reflect: one gather of indices lo, ..., 1, 0, ..., n-1, n-2, ..., n-1-hi
    std::vector<int64_t> idx;
    for (int64_t i = -lo; i < n + hi; ++i) idx.push_back(i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
    y = take(y, d, from_data(idx, Shape{static_cast<int64_t>(idx.size())}));
  }
  return {y};
}

}  // namespace

void add_nn_ops(OpTable& t) {
  t["Conv"] = conv;
  t["MaxPool"] = max_pool;
  t["AveragePool"] = avg_pool;
  t["GlobalAveragePool"] = [](const OpContext& c, const Ins& in) { return global_pool(c, in, false); };
  t["GlobalMaxPool"] = [](const OpContext& c, const Ins& in) { return global_pool(c, in, true); };
  t["BatchNormalization"] = batch_norm_op;
  t["LayerNormalization"] = layer_norm_op;
  t["Dropout"] = dropout_op;
  t["Pad"] = pad_op;
}

}  // namespace resin::onnx
