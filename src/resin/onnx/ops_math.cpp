// Elementwise, activation, matrix and reduction ops of the interpreter.
#include <cmath>
#include <limits>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/onnx/ops.h"

namespace resin::onnx {

namespace {

using Ins = std::vector<Tensor>;
using Outs = std::vector<Tensor>;

bool is_int(DType t) { return t == DType::i64 || t == DType::i32 || t == DType::u8; }

// Integer arithmetic for shape computations (Shape → Gather → Mul → Reshape chains); ONNX Div on
// integers truncates.
Tensor int_binary(const OpContext& c, const Tensor& a, const Tensor& b, char op) {
  if (a.dtype() != b.dtype()) c.fail(str_cat("input types differ: ", a.dtype(), " and ", b.dtype()));
  const Shape s = broadcast_shapes(a.shape(), b.shape(), c.node().op.c_str());
  check_size(c, s, "the output");
  const auto va = a.expand(s).contiguous().values<int64_t>(), vb = b.expand(s).contiguous().values<int64_t>();
  std::vector<int64_t> out(va.size());  // exact: int64 results above 2^53 do not survive a double
  for (size_t i = 0; i < va.size(); ++i) {
    int64_t r = 0;
    bool overflow = false;
    switch (op) {
      case '+': overflow = __builtin_add_overflow(va[i], vb[i], &r); break;
      case '-': overflow = __builtin_sub_overflow(va[i], vb[i], &r); break;
      case '*': overflow = __builtin_mul_overflow(va[i], vb[i], &r); break;
      default:
        if (vb[i] == 0) c.fail("integer division by zero");
        overflow = va[i] == INT64_MIN && vb[i] == -1;
        if (!overflow) r = va[i] / vb[i];
    }
    if (overflow) c.fail(str_cat("integer overflow in ", va[i], " ", op, " ", vb[i]));
    // Wrap around like the fixed-width types (numpy, ONNX Runtime).
    if (a.dtype() == DType::u8) r = static_cast<uint8_t>(r);
    if (a.dtype() == DType::i32) r = static_cast<int32_t>(r);
    out[i] = r;
  }
  return from_data(out, s).to(a.dtype());  // i32/u8 results are in range after the wrap
}

OpFn binary(char op) {
  return [op](const OpContext& c, const Ins& in) -> Outs {
    const Tensor& a = need(c, in, 0, "A");
    const Tensor& b = need(c, in, 1, "B");
    if (is_int(a.dtype())) return {int_binary(c, a, b, op)};
    check_size(c, broadcast_shapes(a.shape(), b.shape(), c.node().op.c_str()), "the output");
    switch (op) {
      case '+': return {add(a, b)};
      case '-': return {sub(a, b)};
      case '*': return {mul(a, b)};
      default: return {div(a, b)};
    }
  };
}

OpFn unary(Tensor (*f)(const Tensor&)) {
  return [f](const OpContext& c, const Ins& in) -> Outs { return {f(need(c, in, 0, "X"))}; };
}

// erf has no resin op; its node lives here: d erf(x)/dx = 2/√π · exp(−x²).
struct ErfBackward : autograd::Node {
  Tensor x;
  std::string name() const override { return "ErfBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    RESIN_CHECK(x.defined(), "ErfBackward: saved input was released (backward twice without retain_graph?)");
    return {mul(g[0], mul(exp(neg(mul(x, x))), 2.0 / std::sqrt(M_PI)))};
  }
};

Tensor erf(const Tensor& x) {
  RESIN_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, "Erf: expected f32 or f64, got ", x.dtype());
  Tensor xc = x.contiguous();
  Tensor y = empty(x.shape(), {.dtype = x.dtype()});
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const T* src = xc.data<T>();
      T* dst = y.data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) dst[i] = std::erf(src[i]);
    }
  });
  if (GradMode::is_enabled() && x.requires_grad()) {
    auto node = std::make_shared<ErfBackward>();
    node->x = x.detach();
    autograd::set_history(node, {&x}, {&y});
  }
  return y;
}

// x^y elementwise with broadcasting, as std::pow (negative bases with integer exponents, NaN
// otherwise, like numpy); the result has x's type. Gradients: y·x^(y−1) and x^y·ln x.
struct PowBackward : autograd::Node {
  Tensor x, y, z;
  std::string name() const override { return "PowBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = y = z = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    RESIN_CHECK(x.defined(), "PowBackward: saved tensors were released (backward twice without retain_graph?)");
    const Shape& s = z.shape();
    const auto xv = x.expand(s).contiguous().to_vector(), yv = y.expand(s).contiguous().to_vector();
    const auto zv = z.to_vector(), gv = g[0].contiguous().to_vector();
    std::vector<double> gx(zv.size()), gy(zv.size());
    for (size_t i = 0; i < zv.size(); ++i) {
      gx[i] = gv[i] * (yv[i] == 0 ? 0.0 : yv[i] * std::pow(xv[i], yv[i] - 1));
      gy[i] = gv[i] * (xv[i] > 0 ? zv[i] * std::log(xv[i]) : 0.0);  // undefined for x <= 0: as torch, 0 at x = 0
    }
    std::vector<Tensor> out(2);
    if (needs_input_grad(0)) out[0] = sum_to(from_vector(gx, s, {.dtype = x.dtype()}), x.shape());
    if (needs_input_grad(1)) out[1] = sum_to(from_vector(gy, s, {.dtype = y.dtype()}), y.shape());
    return out;
  }
};

Outs pow_op(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "X");
  const Tensor& y = need(c, in, 1, "Y");
  const Shape s = broadcast_shapes(x.shape(), y.shape(), "Pow");
  check_size(c, s, "the output");
  // A constant scalar exponent (LayerNorm's x²): resin's own pow.
  if (is_floating(x.dtype()) && y.numel() == 1 && !y.requires_grad() && s == x.shape()) return {pow(x, y.item())};
  const auto xv = x.expand(s).contiguous().to_vector(), yv = y.expand(s).contiguous().to_vector();
  std::vector<double> zv(xv.size());
  const bool integral = !is_floating(x.dtype());
  for (size_t i = 0; i < zv.size(); ++i) {
    zv[i] = std::pow(xv[i], yv[i]);
    if (integral) zv[i] = std::trunc(zv[i]);
  }
  Tensor z = from_vector(zv, s, {.dtype = x.dtype()});
  if (GradMode::is_enabled() && is_floating(x.dtype()) && (x.requires_grad() || y.requires_grad())) {
    auto node = std::make_shared<PowBackward>();
    node->x = x.detach();
    node->y = y.detach();
    node->z = z.detach();
    autograd::set_history(node, {&x, &y}, {&z});
  }
  return {z};
}

Outs clip(const OpContext& c, const Ins& in) {
  const Tensor& x = need(c, in, 0, "input");
  const double inf = std::numeric_limits<double>::infinity();
  double lo = -inf, hi = inf;
  if (c.opset() < 11) {
    lo = c.f("min", -inf);
    hi = c.f("max", inf);
  } else {
    auto bound = [&](size_t i, double def) {
      if (i >= in.size() || !in[i].defined()) return def;
      if (in[i].numel() != 1) c.fail("min and max must be scalars");
      return in[i].item();
    };
    lo = bound(1, lo);
    hi = bound(2, hi);
  }
  return {clamp(x, lo, hi)};
}

// The size of a matmul's output, checked before it is allocated (batch dims broadcast).
void check_matmul(const OpContext& c, const Tensor& a, const Tensor& b) {
  if (a.dim() < 2 || b.dim() < 2) return;  // a vector operand: no larger than the other input
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "MatMul");
  batch.push_back(a.size(-2));
  batch.push_back(b.size(-1));
  check_size(c, batch, "the output");
}

Outs matmul_op(const OpContext& c, const Ins& in) {
  const Tensor& a = need(c, in, 0, "A");
  const Tensor& b = need(c, in, 1, "B");
  check_matmul(c, a, b);
  return {matmul(a, b)};
}

Outs gemm(const OpContext& c, const Ins& in) {
  Tensor a = need(c, in, 0, "A"), b = need(c, in, 1, "B");
  const Tensor cc = in.size() > 2 ? in[2] : Tensor();
  if (a.dim() != 2 || b.dim() != 2) c.fail(str_cat("A and B must be 2-D, got ", a.shape(), " and ", b.shape()));
  const double alpha = c.f("alpha", 1.0), beta = c.f("beta", 1.0);
  if (c.i("transA", 0)) a = a.transpose(0, 1);
  const bool tb = c.i("transB", 0) != 0;
  check_matmul(c, a, tb ? b.transpose(0, 1) : b);
  // The common Linear form: A · Bᵀ + bias.
  if (tb && alpha == 1.0 && beta == 1.0 && (!cc.defined() || (cc.dim() == 1 && cc.size(0) == b.size(0))))
    return {linear(a, b, cc)};
  Tensor y = matmul(a, tb ? b.transpose(0, 1) : b);
  if (alpha != 1.0) y = mul(y, alpha);
  // C broadcasts to [M, N] one way only (a larger C would make a larger output than ONNX's).
  if (cc.defined() && broadcast_shapes(y.shape(), cc.shape(), "Gemm") != y.shape())
    c.fail(str_cat("C of shape ", cc.shape(), " does not broadcast to the output's ", y.shape()));
  if (cc.defined()) y = add(y, beta == 1.0 ? cc : mul(cc, beta));
  return {y};
}

OpFn softmax_op(bool log) {
  return [log](const OpContext& c, const Ins& in) -> Outs {
    const Tensor& x = need(c, in, 0, "input");
    const int64_t r = x.dim();
    auto f = [&](const Tensor& t, int64_t d) { return log ? log_softmax(t, d) : softmax(t, d); };
    if (c.opset() >= 13) return {f(x, axis(c, c.i("axis", -1), r))};
    // Before opset 13: the input is coerced to 2-D at `axis` and normalised over the second dim.
    const int64_t a = axis(c, c.i("axis", 1), r);
    int64_t rows = 1;
    for (int64_t d = 0; d < a; ++d) rows *= x.size(d);
    return {f(x.reshape({rows, -1}), 1).reshape(x.shape())};
  };
}

// ReduceMean/ReduceSum: axes from the attribute, or (ReduceSum from opset 13) from input 1.
OpFn reduce(bool is_mean) {
  return [is_mean](const OpContext& c, const Ins& in) -> Outs {
    const Tensor& x = need(c, in, 0, "data");
    std::vector<int64_t> axes;
    const bool axes_input = !is_mean && c.opset() >= 13;
    if (axes_input) {
      if (in.size() > 1 && in[1].defined()) axes = int_values(in[1], "axes");
    } else {
      axes = c.ints("axes", {});
    }
    const bool keep = c.i("keepdims", 1) != 0;
    if (axes.empty() && axes_input && c.i("noop_with_empty_axes", 0)) return {x};
    for (auto& a : axes) a = axis(c, a, x.dim());
    if (axes.empty())
      for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
    return {is_mean ? mean(x, axes, keep) : sum(x, axes, keep)};
  };
}

}  // namespace

void add_math_ops(OpTable& t) {
  t["Add"] = binary('+');
  t["Sub"] = binary('-');
  t["Mul"] = binary('*');
  t["Div"] = binary('/');
  t["Pow"] = pow_op;
  t["Relu"] = unary([](const Tensor& x) { return relu(x); });
  t["Sigmoid"] = unary([](const Tensor& x) { return sigmoid(x); });
  t["Tanh"] = unary([](const Tensor& x) { return tanh(x); });
  t["Exp"] = unary([](const Tensor& x) { return exp(x); });
  t["Log"] = unary([](const Tensor& x) {
    backend::ForceReferenceGuard exact;  // oneDNN's log is off by ~1e-6 near 1 (log(1) != 0)
    return log(x);
  });
  t["Neg"] = unary([](const Tensor& x) { return neg(x); });
  t["Abs"] = unary([](const Tensor& x) { return abs(x); });
  t["Sqrt"] = unary([](const Tensor& x) { return sqrt(x); });
  t["Reciprocal"] = unary([](const Tensor& x) { return pow(x, -1.0); });
  t["Erf"] = unary(erf);
  t["LeakyRelu"] = [](const OpContext& c, const Ins& in) -> Outs {
    return {leaky_relu(need(c, in, 0, "X"), c.f("alpha", 0.01))};
  };
  t["Clip"] = clip;
  t["MatMul"] = matmul_op;
  t["Gemm"] = gemm;
  t["Softmax"] = softmax_op(false);
  t["LogSoftmax"] = softmax_op(true);
  t["ReduceMean"] = reduce(true);
  t["ReduceSum"] = reduce(false);
}

}  // namespace resin::onnx
