// Parity cases for the elementwise ops: layouts, broadcasting, and the values where the
// derivative has a kink (0 for relu/abs/leaky_relu, the bounds for clamp, the softplus threshold).
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

using UnaryFn = std::function<Tensor(const Tensor&)>;

void unary(std::vector<Case>& out, DType t, const std::string& op, const std::string& label, Tensor x, Layout l,
           const std::string& attrs, UnaryFn f) {
  Case c = make_case(op, label + " " + layout_name(l), t, attrs, {arg(std::move(x), l)},
                     [f](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; });
  c.expect_channels_last = l == Layout::channels_last;
  out.push_back(std::move(c));
}

// The standard layout sweep for a unary op on inputs drawn from `draw(shape)`.
void unary_sweep(std::vector<Case>& out, DType t, const std::string& op, const std::string& attrs,
                 const std::function<Tensor(const Shape&)>& draw, UnaryFn f) {
  unary(out, t, op, "[3,4,5]", draw({3, 4, 5}), Layout::contiguous, attrs, f);
  unary(out, t, op, "[4,6]", draw({4, 6}), Layout::strided, attrs, f);
  unary(out, t, op, "[2,3,4]", draw({2, 3, 4}), Layout::transposed, attrs, f);
  unary(out, t, op, "[2,3,4,5]", draw({2, 3, 4, 5}), Layout::channels_last, attrs, f);
  unary(out, t, op, "scalar", draw({}), Layout::contiguous, attrs, f);
}

void binary_cases(std::vector<Case>& out, DType t, Data& d, const std::string& op,
                  std::function<Tensor(const Tensor&, const Tensor&)> f, bool positive_rhs) {
  auto rhs = [&](const Shape& s) { return positive_rhs ? d.uniform(s, 0.5, 2.0, t) : d.randn(s, t); };
  auto run = [f](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0], in[1])}; };
  auto add = [&](const std::string& label, Input a, Input b) {
    Case c = make_case(op, label, t, "{}", {a, b}, run);
    // The output keeps the layout of an operand that already has the output's shape.
    const Shape out_shape = broadcast_shapes(a.value.shape(), b.value.shape(), "test");
    c.expect_channels_last = (a.layout == Layout::channels_last && a.value.shape() == out_shape) ||
                             (b.layout == Layout::channels_last && b.value.shape() == out_shape);
    out.push_back(std::move(c));
  };
  add("same shape [3,4]", arg(d.randn({3, 4}, t)), arg(rhs({3, 4})));
  add("broadcast [3,1,5] with [4,1]", arg(d.randn({3, 1, 5}, t)), arg(rhs({4, 1})));
  add("broadcast [5] with [2,3,5]", arg(d.randn({5}, t)), arg(rhs({2, 3, 5})));
  add("0-d with [2,3]", arg(d.randn({}, t)), arg(rhs({2, 3})));
  add("[2,3] with 0-d", arg(d.randn({2, 3}, t)), arg(rhs({})));
  add("transposed with strided [3,4,2]", arg(d.randn({3, 4, 2}, t), Layout::transposed),
      arg(rhs({3, 4, 2}), Layout::strided));
  add("channels_last [2,3,4,5] with per-channel [3,1,1]", arg(d.randn({2, 3, 4, 5}, t), Layout::channels_last),
      arg(rhs({3, 1, 1})));
  add("broadcast strided [4,1] with channels_last [2,3,4,5]", arg(d.randn({4, 1}, t), Layout::strided),
      arg(rhs({2, 3, 4, 5}), Layout::channels_last));
  add("same input broadcast both ways [1,4] with [3,1]", arg(d.randn({1, 4}, t)), arg(rhs({3, 1})));
}

}  // namespace

void add_elementwise_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 11 : 12);
  auto normal = [&](const Shape& s) { return d.randn(s, t); };
  auto positive = [&](const Shape& s) { return d.uniform(s, 0.2, 3.0, t); };
  auto away_from_zero = [&](const Shape& s) {
    Tensor u = d.uniform(s, 0.1, 2.0, t), n = d.randn(s, t);
    return mul(u, where(gt(n, 0.0), ones({}, {.dtype = t}), full({}, -1.0, {.dtype = t})));
  };

  binary_cases(out, t, d, "add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, false);
  binary_cases(out, t, d, "sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, false);
  binary_cases(out, t, d, "mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, false);
  binary_cases(out, t, d, "div", [](const Tensor& a, const Tensor& b) { return div(a, b); }, true);

  for (double s : {2.5, -0.75}) {
    const std::string a = Attrs().num("s", s).json();
    unary_sweep(out, t, "add_scalar", a, normal, [s](const Tensor& x) { return add(x, s); });
    unary_sweep(out, t, "mul_scalar", a, normal, [s](const Tensor& x) { return mul(x, s); });
  }
  unary_sweep(out, t, "neg", "{}", normal, [](const Tensor& x) { return neg(x); });
  unary_sweep(out, t, "exp", "{}", normal, [](const Tensor& x) { return exp(x); });
  unary_sweep(out, t, "log", "{}", positive, [](const Tensor& x) { return log(x); });
  unary_sweep(out, t, "sqrt", "{}", positive, [](const Tensor& x) { return sqrt(x); });
  unary_sweep(out, t, "rsqrt", "{}", positive, [](const Tensor& x) { return rsqrt(x); });
  for (double e : {2.0, 3.0, 1.0, -1.0}) {  // integral exponents: any sign of base
    unary_sweep(out, t, "pow", Attrs().num("exponent", e).json(), away_from_zero,
                [e](const Tensor& x) { return pow(x, e); });
  }
  for (double e : {0.5, -1.5, 2.5}) {
    unary_sweep(out, t, "pow", Attrs().num("exponent", e).json(), positive, [e](const Tensor& x) { return pow(x, e); });
  }
  unary_sweep(out, t, "abs", "{}", away_from_zero, [](const Tensor& x) { return abs(x); });
  unary_sweep(out, t, "clamp", Attrs().num("lo", -0.5).num("hi", 0.8).json(), normal,
              [](const Tensor& x) { return clamp(x, -0.5, 0.8); });
  unary_sweep(out, t, "relu", "{}", normal, [](const Tensor& x) { return relu(x); });
  for (double slope : {0.01, 0.2})
    unary_sweep(out, t, "leaky_relu", Attrs().num("slope", slope).json(), normal,
                [slope](const Tensor& x) { return leaky_relu(x, slope); });
  for (bool tanh_approx : {false, true})
    unary_sweep(out, t, "gelu", Attrs().boolean("tanh", tanh_approx).json(),
                [&](const Shape& s) { return d.randn(s, t, 2.5); },
                [tanh_approx](const Tensor& x) { return gelu(x, tanh_approx); });
  unary_sweep(out, t, "sigmoid", "{}", [&](const Shape& s) { return d.randn(s, t, 3.0); },
              [](const Tensor& x) { return sigmoid(x); });
  unary_sweep(out, t, "tanh", "{}", [&](const Shape& s) { return d.randn(s, t, 2.0); },
              [](const Tensor& x) { return tanh(x); });
  for (auto [beta, threshold] : {std::pair{1.0, 20.0}, std::pair{2.0, 3.0}, std::pair{0.5, 1.0}})
    unary_sweep(out, t, "softplus", Attrs().num("beta", beta).num("threshold", threshold).json(),
                [&](const Shape& s) { return d.randn(s, t, 4.0); },
                [beta, threshold](const Tensor& x) { return softplus(x, beta, threshold); });

  // Kinks, evaluated exactly on them: torch's conventions for the derivative there.
  Tensor kinks = d.values({-2, -0.5, 0, 0.8, 1.5, -0.0, 0.25, 3, 6, 6.5}, {10}, t);
  unary(out, t, "relu", "kinks incl. 0", kinks, Layout::contiguous, "{}", [](const Tensor& x) { return relu(x); });
  unary(out, t, "abs", "kinks incl. 0", kinks, Layout::contiguous, "{}", [](const Tensor& x) { return abs(x); });
  unary(out, t, "leaky_relu", "kinks incl. 0", kinks, Layout::contiguous, Attrs().num("slope", 0.1).json(),
        [](const Tensor& x) { return leaky_relu(x, 0.1); });
  unary(out, t, "clamp", "values on both bounds", kinks, Layout::contiguous, Attrs().num("lo", -0.5).num("hi", 0.8).json(),
        [](const Tensor& x) { return clamp(x, -0.5, 0.8); });
  unary(out, t, "softplus", "on the threshold (beta*x == threshold)", kinks, Layout::contiguous,
        Attrs().num("beta", 2.0).num("threshold", 3.0).json(), [](const Tensor& x) { return softplus(x, 2.0, 3.0); });

  binary_cases(out, t, d, "add_relu", [](const Tensor& a, const Tensor& b) { return add_relu(a, b); }, false);
  unary(out, t, "pow", "exponent 2 at 0", kinks, Layout::contiguous, Attrs().num("exponent", 2.0).json(),
        [](const Tensor& x) { return pow(x, 2.0); });
  unary(out, t, "pow", "exponent 0 incl. 0", kinks, Layout::contiguous, Attrs().num("exponent", 0.0).json(),
        [](const Tensor& x) { return pow(x, 0.0); });
  unary(out, t, "gelu", "kinks incl. 0", kinks, Layout::contiguous, Attrs().boolean("tanh", false).json(),
        [](const Tensor& x) { return gelu(x, false); });

  // where: the condition gets no gradient; every operand may broadcast.
  auto run_where = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{where(in[0], in[1], in[2])}; };
  Tensor cond = from_data<uint8_t>({1, 0, 1}, {3, 1});
  out.push_back(make_case("where", "u8 cond [3,1], a [3,4], b [4]", t, "{}",
                          {fixed(cond), arg(d.randn({3, 4}, t)), arg(d.randn({4}, t))}, run_where));
  Tensor cond2 = gt(d.randn({2, 3, 4}, t), 0.0);
  out.push_back(make_case("where", "float cond, transposed a, strided b [2,3,4]", t, "{}",
                          {fixed(cond2), arg(d.randn({2, 3, 4}, t), Layout::transposed),
                           arg(d.randn({2, 3, 4}, t), Layout::strided)},
                          run_where));
  out.push_back(make_case("where", "0-d a and b", t, "{}",
                          {fixed(gt(d.randn({2, 5}, t), 0.0)), arg(d.randn({}, t)), arg(d.randn({}, t))}, run_where));
}

}  // namespace resin::parity
