// Elementwise ops with broadcasting. Binary ops require matching dtypes (no silent promotion).
#include "resin/ops/detail.h"

namespace resin {
using namespace detail;
using backend::Binary;
using backend::Unary;
using backend::UnaryParams;

namespace {

// Output for an elementwise op: keeps the layout of an input that already has the output shape.
Tensor elementwise_output(const Shape& s, const Tensor& a, const Tensor& b) {
  if (a.shape() == s && a.is_non_overlapping_dense()) return empty_like(a);
  if (b.defined() && b.shape() == s && b.is_non_overlapping_dense()) return empty_like(b);
  return empty(s, {.dtype = a.dtype(), .device = a.device()});
}

Tensor broadcast_view(const Tensor& t, const Shape& s) {
  return t.shape() == s ? t.detach() : t.detach().expand(s);
}

struct AddBackward : Node {
  Shape a_shape, b_shape;
  double b_sign = 1;  // -1 for sub
  std::string name() const override { return b_sign > 0 ? "AddBackward" : "SubBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor ga = needs_input_grad(0) ? sum_to(g[0], a_shape) : Tensor();
    Tensor gb;
    if (needs_input_grad(1)) gb = b_sign > 0 ? sum_to(g[0], b_shape) : neg(sum_to(g[0], b_shape));
    return {ga, gb};
  }
};

struct MulBackward : Node {
  Tensor a, b;
  std::string name() const override { return "MulBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { a = b = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    return {needs_input_grad(0) ? sum_to(mul(g[0], b), a.shape()) : Tensor(),
            needs_input_grad(1) ? sum_to(mul(g[0], a), b.shape()) : Tensor()};
  }
};

struct DivBackward : Node {
  Tensor a, b;
  std::string name() const override { return "DivBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { a = b = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to(div(g[0], b), a.shape());
    if (needs_input_grad(1)) gb = sum_to(neg(div(mul(g[0], a), mul(b, b))), b.shape());
    return {ga, gb};
  }
};

struct ScaleBackward : Node {  // add/mul by a scalar
  double scale = 1;
  bool is_mul = false;
  std::string name() const override { return is_mul ? "MulScalarBackward" : "AddScalarBackward"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return {scale == 1 ? g[0] : mul(g[0], scale)}; }
};

const char* unary_node_name(Unary op) {
  switch (op) {
    case Unary::neg: return "NegBackward";
    case Unary::exp: return "ExpBackward";
    case Unary::log: return "LogBackward";
    case Unary::sqrt: return "SqrtBackward";
    case Unary::rsqrt: return "RsqrtBackward";
    case Unary::abs: return "AbsBackward";
    case Unary::relu: return "ReluBackward";
    case Unary::leaky_relu: return "LeakyReluBackward";
    case Unary::gelu: return "GeluBackward";
    case Unary::gelu_tanh: return "GeluTanhBackward";
    case Unary::sigmoid: return "SigmoidBackward";
    case Unary::tanh: return "TanhBackward";
    case Unary::softplus: return "SoftplusBackward";
    case Unary::pow: return "PowBackward";
    case Unary::clamp: return "ClampBackward";
  }
  return "UnaryBackward";
}

struct UnaryBackward : Node {
  Unary op = Unary::neg;
  UnaryParams params;
  Tensor x, y;
  std::string name() const override { return unary_node_name(op); }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = y = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = empty_like(x);
    be(x).unary_backward(op, x, y, g[0], gx, params);
    return {gx};
  }
};

Tensor unary_op(Unary op, const Tensor& x, UnaryParams p, const char* name) {
  check_floating(x, name);
  Tensor out = empty_like(x);
  be(x).unary(op, x, out, p);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<UnaryBackward>();
    n->op = op;
    n->params = p;
    n->x = x.detach();
    n->y = out.detach();
    record(n, {&x}, {&out});
  }
  return out;
}

Tensor binary_kernel(Binary op, const Tensor& a, const Tensor& b, const char* name) {
  check_floating(a, name);
  check_floating(b, name);
  check_same_dtype(a, b, name);
  const Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = elementwise_output(s, a, b);
  be(out).binary(op, broadcast_view(a, s), broadcast_view(b, s), out);
  return out;
}

// relu(a + b): the gradient of both inputs is g masked where y = relu(a + b) > 0. In a residual
// network y feeds the next block's branch and its shortcut, so g is a sum of two gradients: the
// node takes both and adds them inside the masking pass (Node::fuses_gradient_sum).
struct AddReluBackward : Node {
  Tensor y;
  Shape a_shape, b_shape;
  std::string name() const override { return "AddReluBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { y = Tensor(); }
  bool fuses_gradient_sum() const override { return true; }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override { return masked(g[0], Tensor()); }
  std::vector<Tensor> apply_sum(std::vector<Tensor>&& g, const Tensor& second) override {
    return masked(g[0], second);
  }

 private:
  std::vector<Tensor> masked(const Tensor& g1, const Tensor& g2) {
    Tensor gm = empty_like(y);
    be(y).add_relu_backward(y, g1, g2, gm);
    return {needs_input_grad(0) ? sum_to(gm, a_shape) : Tensor(), needs_input_grad(1) ? sum_to(gm, b_shape) : Tensor()};
  }
};

Tensor add_like(const Tensor& a, const Tensor& b, double sign) {
  Tensor out = binary_kernel(sign > 0 ? Binary::add : Binary::sub, a, b, sign > 0 ? "add" : "sub");
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<AddBackward>();
    n->a_shape = a.shape();
    n->b_shape = b.shape();
    n->b_sign = sign;
    record(n, {&a, &b}, {&out});
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add_like(a, b, 1); }
Tensor sub(const Tensor& a, const Tensor& b) { return add_like(a, b, -1); }

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(Binary::mul, a, b, "mul");
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<MulBackward>();
    n->a = a.detach();
    n->b = b.detach();
    record(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(Binary::div, a, b, "div");
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<DivBackward>();
    n->a = a.detach();
    n->b = b.detach();
    record(n, {&a, &b}, {&out});
  }
  return out;
}

static Tensor scalar_op(const Tensor& a, double s, bool is_mul) {
  const char* name = is_mul ? "mul_scalar" : "add_scalar";
  check_floating(a, name);
  Tensor sv = full(Shape{}, s, like(a));
  Tensor out = empty_like(a);
  be(out).binary(is_mul ? Binary::mul : Binary::add, a.detach(), sv.expand(a.shape()), out);
  if (autograd::any_requires_grad({&a})) {
    auto n = std::make_shared<ScaleBackward>();
    n->scale = is_mul ? s : 1.0;
    n->is_mul = is_mul;
    record(n, {&a}, {&out});
  }
  return out;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  if (fusion_disabled()) return relu(add(a, b));
  check_floating(a, "add_relu");
  check_floating(b, "add_relu");
  check_same_dtype(a, b, "add_relu");
  const Shape s = broadcast_shapes(a.shape(), b.shape(), "add_relu");
  Tensor out = elementwise_output(s, a, b);
  be(out).add_relu(broadcast_view(a, s), broadcast_view(b, s), out);
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<AddReluBackward>();
    n->y = out.detach();
    n->a_shape = a.shape();
    n->b_shape = b.shape();
    record(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor add(const Tensor& a, double s) { return scalar_op(a, s, false); }
Tensor mul(const Tensor& a, double s) { return scalar_op(a, s, true); }

Tensor neg(const Tensor& x) { return unary_op(Unary::neg, x, {}, "neg"); }
Tensor exp(const Tensor& x) { return unary_op(Unary::exp, x, {}, "exp"); }
Tensor log(const Tensor& x) { return unary_op(Unary::log, x, {}, "log"); }
Tensor sqrt(const Tensor& x) { return unary_op(Unary::sqrt, x, {}, "sqrt"); }
Tensor rsqrt(const Tensor& x) { return unary_op(Unary::rsqrt, x, {}, "rsqrt"); }
Tensor pow(const Tensor& x, double e) { return unary_op(Unary::pow, x, {.alpha = e}, "pow"); }
Tensor abs(const Tensor& x) { return unary_op(Unary::abs, x, {}, "abs"); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  RESIN_CHECK(lo <= hi, "clamp: expected lo <= hi, got ", lo, " and ", hi);
  return unary_op(Unary::clamp, x, {.alpha = lo, .beta = hi}, "clamp");
}
Tensor relu(const Tensor& x) { return unary_op(Unary::relu, x, {}, "relu"); }
Tensor leaky_relu(const Tensor& x, double slope) { return unary_op(Unary::leaky_relu, x, {.alpha = slope}, "leaky_relu"); }
Tensor gelu(const Tensor& x, bool tanh_approx) {
  return unary_op(tanh_approx ? Unary::gelu_tanh : Unary::gelu, x, {}, "gelu");
}
Tensor sigmoid(const Tensor& x) { return unary_op(Unary::sigmoid, x, {}, "sigmoid"); }
Tensor tanh(const Tensor& x) { return unary_op(Unary::tanh, x, {}, "tanh"); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  RESIN_CHECK(beta > 0, "softplus: beta must be positive, got ", beta);
  return unary_op(Unary::softplus, x, {.alpha = beta, .beta = threshold}, "softplus");
}

namespace {
struct WhereBackward : Node {
  Tensor cond;
  Shape a_shape, b_shape;
  std::string name() const override { return "WhereBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { cond = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor z = zeros(Shape{}, like(g[0]));
    Tensor ga, gb;
    if (needs_input_grad(1)) ga = sum_to(where(cond, g[0], z), a_shape);
    if (needs_input_grad(2)) gb = sum_to(where(cond, z, g[0]), b_shape);
    return {Tensor(), ga, gb};
  }
};
}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_floating(a, "where");
  check_same_dtype(a, b, "where");
  check_defined(cond, "where", "condition");
  check_same_device(a, cond, "where", "the condition");
  const Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = elementwise_output(s, a, b);
  be(out).where(broadcast_view(cond, s), broadcast_view(a, s), broadcast_view(b, s), out);
  if (autograd::any_requires_grad({&a, &b})) {
    auto n = std::make_shared<WhereBackward>();
    n->cond = cond.detach();
    n->a_shape = a.shape();
    n->b_shape = b.shape();
    record(n, {&cond, &a, &b}, {&out});
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, full(Shape{}, value, like(x)), x);
}

Tensor eq(const Tensor& a, const Tensor& b) { NoGradGuard g; return binary_kernel(Binary::eq, a, b, "eq"); }
Tensor gt(const Tensor& a, const Tensor& b) { NoGradGuard g; return binary_kernel(Binary::gt, a, b, "gt"); }
Tensor lt(const Tensor& a, const Tensor& b) { NoGradGuard g; return binary_kernel(Binary::lt, a, b, "lt"); }
Tensor gt(const Tensor& a, double s) { return gt(a, full(Shape{}, s, like(a))); }
Tensor lt(const Tensor& a, double s) { return lt(a, full(Shape{}, s, like(a))); }

}  // namespace resin
