// Gradcheck cases for reductions (keepdim true/false, negative dims, several dims, non-contiguous
// inputs; max/min on tie-free inputs) and for matmul / linear.
#include "../support/gradcheck.h"

namespace resin::testing {

// ---- sum / mean
RESIN_GRADCHECK_CASE(sum, all) {
  Generator g(101);
  return {{leaf(rnd({3, 4}, g))}, [](const Inputs& in) { return Outputs{sum(in[0])}; }};
}
RESIN_GRADCHECK_CASE(sum, dim1_keepdim) {
  Generator g(102);
  return {{leaf(rnd({2, 3, 4}, g))}, [](const Inputs& in) { return Outputs{sum(in[0], {1}, true)}; }};
}
RESIN_GRADCHECK_CASE(sum, negative_dims_transposed) {
  Generator g(103);
  return {{leaf(transposed_layout(rnd({2, 3, 4}, g), 0, 2))}, [](const Inputs& in) {
            return Outputs{sum(in[0], {-1, 0}, false)};
          }};
}
RESIN_GRADCHECK_CASE(sum, channels_last_spatial) {
  Generator g(104);
  return {{leaf(channels_last(rnd({2, 3, 2, 3}, g)))}, [](const Inputs& in) {
            return Outputs{sum(in[0], {2, 3})};
          }};
}
RESIN_GRADCHECK_CASE(sum, zero_dim_input) {
  Generator g(105);
  return {{leaf(rnd({}, g))}, [](const Inputs& in) { return Outputs{sum(in[0])}; }};
}
RESIN_GRADCHECK_CASE(mean, all_narrowed) {
  Generator g(106);
  return {{leaf(narrowed_layout(rnd({3, 5}, g), 1))}, [](const Inputs& in) { return Outputs{mean(in[0])}; }};
}
RESIN_GRADCHECK_CASE(mean, negative_dim_keepdim) {
  Generator g(107);
  return {{leaf(rnd({2, 3, 5}, g))}, [](const Inputs& in) { return Outputs{mean(in[0], {-2}, true)}; }};
}
RESIN_GRADCHECK_CASE(mean, two_dims) {
  Generator g(108);
  return {{leaf(rnd({2, 3, 4, 2}, g))}, [](const Inputs& in) { return Outputs{mean(in[0], {0, 2})}; }};
}

// ---- max / min (distinct values: no ties, so the gradient is unique)
RESIN_GRADCHECK_CASE(max, all) {
  Generator g(109);
  return {{leaf(distinct({3, 4}, g))}, [](const Inputs& in) { return Outputs{max(in[0])}; }};
}
RESIN_GRADCHECK_CASE(max, last_dim_keepdim) {
  Generator g(110);
  return {{leaf(distinct({3, 5}, g))}, [](const Inputs& in) { return Outputs{max(in[0], {-1}, true)}; }};
}
RESIN_GRADCHECK_CASE(max, two_dims_transposed) {
  Generator g(111);
  return {{leaf(transposed_layout(distinct({2, 3, 4}, g), 1, 2))}, [](const Inputs& in) {
            return Outputs{max(in[0], {0, 2})};
          }};
}
RESIN_GRADCHECK_CASE(min, dim0) {
  Generator g(112);
  return {{leaf(distinct({4, 3}, g))}, [](const Inputs& in) { return Outputs{min(in[0], {0})}; }};
}
RESIN_GRADCHECK_CASE(min, negative_dim_keepdim_channels_last) {
  Generator g(113);
  return {{leaf(channels_last(distinct({2, 3, 2, 2}, g)))},
          [](const Inputs& in) { return Outputs{min(in[0], {-3}, true)}; }};
}

// ---- var
RESIN_GRADCHECK_CASE(var, all_unbiased) {
  Generator g(114);
  return {{leaf(rnd({3, 4}, g))}, [](const Inputs& in) { return Outputs{var(in[0])}; }};
}
RESIN_GRADCHECK_CASE(var, dim_biased_keepdim) {
  Generator g(115);
  return {{leaf(rnd({3, 4}, g))}, [](const Inputs& in) { return Outputs{var(in[0], {1}, 0, true)}; }};
}
RESIN_GRADCHECK_CASE(var, negative_dims_noncontiguous) {
  Generator g(116);
  return {{leaf(narrowed_layout(rnd({2, 3, 4}, g), 2))}, [](const Inputs& in) {
            return Outputs{var(in[0], {-1, -3})};
          }};
}

// ---- matmul
RESIN_GRADCHECK_CASE(matmul, two_d) {
  Generator g(117);
  return {{leaf(rnd({3, 4}, g)), leaf(rnd({4, 5}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, transposed_operands) {
  Generator g(118);
  return {{leaf(transposed_layout(rnd({3, 4}, g), 0, 1)), leaf(narrowed_layout(rnd({4, 2}, g), 0))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, vector_matrix) {
  Generator g(119);
  return {{leaf(rnd({4}, g)), leaf(rnd({4, 3}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, matrix_vector) {
  Generator g(120);
  return {{leaf(rnd({2, 4}, g)), leaf(rnd({4}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, dot) {
  Generator g(121);
  return {{leaf(rnd({5}, g)), leaf(rnd({5}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, batched_broadcast) {
  Generator g(122);
  return {{leaf(rnd({2, 1, 3, 4}, g)), leaf(rnd({3, 4, 2}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, batched_times_matrix) {
  Generator g(123);
  return {{leaf(rnd({2, 3, 4}, g)), leaf(transposed_layout(rnd({4, 3}, g), 0, 1))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(matmul, batched_vector) {
  Generator g(124);
  return {{leaf(rnd({2, 3, 4}, g)), leaf(rnd({4}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0], in[1])}; }};
}

// ---- linear
RESIN_GRADCHECK_CASE(linear, with_bias) {
  Generator g(125);
  return {{leaf(rnd({3, 5}, g)), leaf(rnd({4, 5}, g)), leaf(rnd({4}, g))},
          [](const Inputs& in) { return Outputs{linear(in[0], in[1], in[2])}; }};
}
RESIN_GRADCHECK_CASE(linear, no_bias_batch1) {
  Generator g(126);
  return {{leaf(rnd({1, 3}, g)), leaf(rnd({2, 3}, g))},
          [](const Inputs& in) { return Outputs{linear(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(linear, three_d_input_noncontiguous_weight) {
  Generator g(127);
  return {{leaf(rnd({2, 3, 4}, g)), leaf(transposed_layout(rnd({5, 4}, g), 0, 1)), leaf(rnd({5}, g))},
          [](const Inputs& in) { return Outputs{linear(in[0], in[1], in[2])}; }};
}

}  // namespace resin::testing
