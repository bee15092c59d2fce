// Gradcheck cases for the elementwise ops of ops.def: broadcasting, non-contiguous and
// channels-last operands, the same tensor on both sides, 0-d operands; inputs kept away from kinks.
#include "../support/gradcheck.h"

namespace resin::testing {
namespace {

GradcheckSpec unary(Tensor x, Tensor (*op)(const Tensor&)) {
  return {{leaf(std::move(x))}, [op](const Inputs& in) { return Outputs{op(in[0])}; }};
}

}  // namespace

// ---- add / sub / mul / div
RESIN_GRADCHECK_CASE(add, same_shape) {
  Generator g(1);
  return {{leaf(rnd({3, 5}, g)), leaf(rnd({3, 5}, g))},
          [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add, broadcast_both_sides) {
  Generator g(2);
  return {{leaf(rnd({3, 1, 5}, g)), leaf(rnd({4, 1}, g))},
          [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add, transposed_plus_narrowed) {
  Generator g(3);
  return {{leaf(transposed_layout(rnd({4, 6}, g), 0, 1)), leaf(narrowed_layout(rnd({4, 6}, g), 0))},
          [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add, same_tensor_twice) {
  Generator g(4);
  return {{leaf(rnd({2, 3}, g))}, [](const Inputs& in) { return Outputs{add(in[0], in[0])}; }};
}
RESIN_GRADCHECK_CASE(add, scalar_tensor_operand) {
  Generator g(5);
  return {{leaf(rnd({}, g)), leaf(rnd({2, 3}, g))},
          [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add, channels_last_plus_bias) {
  Generator g(6);
  return {{leaf(channels_last(rnd({2, 3, 4, 5}, g))), leaf(rnd({3, 1, 1}, g))},
          [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add, only_one_side_requires_grad) {
  Generator g(7);
  return {{rnd({3, 4}, g), leaf(rnd({4}, g))}, [](const Inputs& in) { return Outputs{add(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add_relu, same_shape) {
  Generator g(301);
  return {{leaf(rnd({3, 5}, g)), leaf(rnd({3, 5}, g))},
          [](const Inputs& in) { return Outputs{add_relu(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add_relu, channels_last_plus_broadcast_bias) {
  Generator g(302);
  return {{leaf(channels_last(rnd({2, 3, 4, 5}, g))), leaf(rnd({3, 1, 1}, g))},
          [](const Inputs& in) { return Outputs{add_relu(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(add_relu, same_tensor_twice) {
  Generator g(303);
  return {{leaf(rnd({2, 3}, g))}, [](const Inputs& in) { return Outputs{add_relu(in[0], in[0])}; }};
}
RESIN_GRADCHECK_CASE(sub, broadcast) {
  Generator g(8);
  return {{leaf(rnd({2, 1, 4}, g)), leaf(rnd({3, 4}, g))},
          [](const Inputs& in) { return Outputs{sub(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(sub, channels_last_minus_transposed) {
  Generator g(9);
  return {{leaf(channels_last(rnd({1, 3, 2, 4}, g))), leaf(transposed_layout(rnd({1, 3, 2, 4}, g), 1, 3))},
          [](const Inputs& in) { return Outputs{sub(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(sub, same_tensor_twice) {
  Generator g(10);
  return {{leaf(rnd({5}, g))}, [](const Inputs& in) { return Outputs{mul(sub(in[0], in[0]), 3.0)}; }};
}
RESIN_GRADCHECK_CASE(mul, broadcast) {
  Generator g(11);
  return {{leaf(rnd({3, 1}, g)), leaf(rnd({1, 5}, g))},
          [](const Inputs& in) { return Outputs{mul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(mul, square_same_tensor) {
  Generator g(12);
  return {{leaf(transposed_layout(rnd({3, 4}, g), 0, 1))},
          [](const Inputs& in) { return Outputs{mul(in[0], in[0])}; }};
}
RESIN_GRADCHECK_CASE(mul, channels_last_times_per_channel) {
  Generator g(13);
  return {{leaf(channels_last(rnd({2, 5, 3, 3}, g))), leaf(rnd({1, 5, 1, 1}, g))},
          [](const Inputs& in) { return Outputs{mul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(div, broadcast_denominator) {
  Generator g(14);
  return {{leaf(rnd({3, 4}, g)), leaf(away_from_zero({4}, g, 0.5, 2.0))},
          [](const Inputs& in) { return Outputs{div(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(div, broadcast_numerator_noncontiguous) {
  Generator g(15);
  return {{leaf(rnd({1, 4}, g)), leaf(transposed_layout(away_from_zero({3, 4}, g, 0.5, 2.0), 0, 1))},
          [](const Inputs& in) { return Outputs{div(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(div, same_tensor_twice) {
  Generator g(16);
  return {{leaf(away_from_zero({4}, g, 0.5, 2.0))},
          [](const Inputs& in) { return Outputs{div(in[0], in[0])}; }};
}

// ---- scalar ops
RESIN_GRADCHECK_CASE(add_scalar, noncontiguous) {
  Generator g(17);
  return {{leaf(narrowed_layout(rnd({3, 4}, g), 1))},
          [](const Inputs& in) { return Outputs{add(in[0], -2.5)}; }};
}
RESIN_GRADCHECK_CASE(add_scalar, rsub_operator) {
  Generator g(18);
  return {{leaf(rnd({5}, g))}, [](const Inputs& in) { return Outputs{1.0 - in[0]}; }};
}
RESIN_GRADCHECK_CASE(mul_scalar, channels_last) {
  Generator g(19);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g)))},
          [](const Inputs& in) { return Outputs{mul(in[0], -1.75)}; }};
}
RESIN_GRADCHECK_CASE(mul_scalar, by_one_and_division) {
  Generator g(20);
  return {{leaf(rnd({4}, g))}, [](const Inputs& in) { return Outputs{mul(in[0], 1.0) / 4.0}; }};
}

// ---- unary
RESIN_GRADCHECK_CASE(neg, transposed) {
  Generator g(21);
  return unary(transposed_layout(rnd({3, 5}, g), 0, 1), &neg);
}
RESIN_GRADCHECK_CASE(exp, channels_last) {
  Generator g(22);
  return unary(channels_last(rnd({1, 3, 3, 2}, g)), &exp);
}
RESIN_GRADCHECK_CASE(log, positive) {
  Generator g(23);
  return unary(rnd({7}, g, 0.2, 3.0), &log);
}
RESIN_GRADCHECK_CASE(log, narrowed) {
  Generator g(24);
  return unary(narrowed_layout(rnd({3, 4}, g, 0.5, 2.0), 0), &log);
}
RESIN_GRADCHECK_CASE(sqrt, positive) {
  Generator g(25);
  return unary(rnd({2, 3}, g, 0.2, 4.0), &sqrt);
}
RESIN_GRADCHECK_CASE(rsqrt, positive) {
  Generator g(26);
  return unary(transposed_layout(rnd({2, 3}, g, 0.3, 4.0), 0, 1), &rsqrt);
}
RESIN_GRADCHECK_CASE(pow, square) {
  Generator g(27);
  return {{leaf(rnd({6}, g))}, [](const Inputs& in) { return Outputs{pow(in[0], 2.0)}; }};
}
RESIN_GRADCHECK_CASE(pow, cube_negative_inputs) {
  Generator g(28);
  return {{leaf(rnd({6}, g, -2.0, -0.1))}, [](const Inputs& in) { return Outputs{pow(in[0], 3.0)}; }};
}
RESIN_GRADCHECK_CASE(pow, fractional_negative_exponent) {
  Generator g(29);
  return {{leaf(rnd({2, 3}, g, 0.3, 3.0))}, [](const Inputs& in) { return Outputs{pow(in[0], -1.5)}; }};
}
RESIN_GRADCHECK_CASE(pow, half_noncontiguous) {
  Generator g(30);
  return {{leaf(narrowed_layout(rnd({3, 3}, g, 0.3, 3.0), 1))},
          [](const Inputs& in) { return Outputs{pow(in[0], 0.5)}; }};
}
RESIN_GRADCHECK_CASE(abs, away_from_zero) {
  Generator g(31);
  return unary(away_from_zero({3, 4}, g), &abs);
}
RESIN_GRADCHECK_CASE(clamp, inside_and_outside) {
  Generator g(32);
  // Values on both sides of both edges, none within 0.05 of an edge.
  Tensor x = f64({-1.3, -0.9, -0.4, 0.0, 0.3, 0.6, 0.85, 1.4}, {2, 4});
  return {{leaf(x)}, [](const Inputs& in) { return Outputs{clamp(in[0], -0.5, 0.7)}; }};
}
RESIN_GRADCHECK_CASE(clamp, transposed) {
  Generator g(33);
  Tensor x = transposed_layout(f64({-2, -1.1, -0.6, 0.2, 0.5, 0.9, 1.2, 3}, {2, 4}), 0, 1);
  return {{leaf(x)}, [](const Inputs& in) { return Outputs{clamp(in[0], -1.0, 1.0)}; }};
}
RESIN_GRADCHECK_CASE(relu, away_from_zero) {
  Generator g(34);
  return unary(away_from_zero({2, 3, 4}, g), &relu);
}
RESIN_GRADCHECK_CASE(relu, channels_last) {
  Generator g(35);
  return unary(channels_last(away_from_zero({2, 3, 2, 3}, g)), &relu);
}
RESIN_GRADCHECK_CASE(leaky_relu, slope) {
  Generator g(36);
  return {{leaf(away_from_zero({10}, g))}, [](const Inputs& in) { return Outputs{leaky_relu(in[0], 0.2)}; }};
}
RESIN_GRADCHECK_CASE(leaky_relu, default_slope_narrowed) {
  Generator g(37);
  return {{leaf(narrowed_layout(away_from_zero({3, 3}, g), 0))},
          [](const Inputs& in) { return Outputs{leaky_relu(in[0])}; }};
}
RESIN_GRADCHECK_CASE(gelu, exact) {
  Generator g(38);
  return {{leaf(rnd({12}, g, -3.0, 3.0))}, [](const Inputs& in) { return Outputs{gelu(in[0])}; }};
}
RESIN_GRADCHECK_CASE(gelu, tanh_approximation) {
  Generator g(39);
  return {{leaf(rnd({3, 4}, g, -3.0, 3.0))}, [](const Inputs& in) { return Outputs{gelu(in[0], true)}; }};
}
RESIN_GRADCHECK_CASE(sigmoid, wide_range) {
  Generator g(40);
  return unary(rnd({3, 4}, g, -6.0, 6.0), &sigmoid);
}
RESIN_GRADCHECK_CASE(tanh, transposed) {
  Generator g(41);
  return unary(transposed_layout(rnd({3, 4}, g, -2.0, 2.0), 0, 1), &tanh);
}
RESIN_GRADCHECK_CASE(softplus, default_beta) {
  Generator g(42);
  return unary(rnd({10}, g, -4.0, 4.0), [](const Tensor& x) { return softplus(x); });
}
RESIN_GRADCHECK_CASE(softplus, beta2_both_sides_of_threshold) {
  // beta * x > threshold (= 3) takes the linear branch; keep beta * x away from 3.
  Tensor x = f64({-2.0, -0.3, 0.4, 1.0, 1.3, 1.8, 2.5, 4.0}, {8});
  return {{leaf(x)}, [](const Inputs& in) { return Outputs{softplus(in[0], 2.0, 3.0)}; }};
}

// ---- where
RESIN_GRADCHECK_CASE(where, broadcast_condition) {
  Generator g(43);
  Tensor cond = f64({1, 0, 0, 1}, {4});
  return {{cond, leaf(rnd({3, 4}, g)), leaf(rnd({3, 1}, g))},
          [](const Inputs& in) { return Outputs{where(in[0], in[1], in[2])}; }};
}
RESIN_GRADCHECK_CASE(where, integer_condition_noncontiguous) {
  Generator g(44);
  Tensor cond = i64({0, 1, 1, 0, 1, 0}, {2, 3});
  return {{cond, leaf(transposed_layout(rnd({2, 3}, g), 0, 1)), leaf(rnd({}, g))},
          [](const Inputs& in) { return Outputs{where(in[0], in[1], in[2])}; }};
}
RESIN_GRADCHECK_CASE(where, masked_fill) {
  Generator g(45);
  Tensor mask = f64({0, 1, 0, 0, 1, 1}, {2, 3});
  return {{mask, leaf(rnd({2, 3}, g))},
          [](const Inputs& in) { return Outputs{masked_fill(in[1], in[0], -4.0)}; }};
}

}  // namespace resin::testing
