// Gradcheck cases for shape ops (concat, stack, split, pad incl. option-A channel padding, views)
// and for the losses (cross_entropy with label smoothing and every reduction, nll_loss, mse_loss).
#include "../support/gradcheck.h"

namespace resin::testing {

// ---- concat / stack / split
RESIN_GRADCHECK_CASE(concat, dim1_three_inputs) {
  Generator g(301);
  return {{leaf(rnd({2, 1, 3}, g)), leaf(rnd({2, 3, 3}, g)), leaf(rnd({2, 2, 3}, g))}, [](const Inputs& in) {
            return Outputs{concat({in[0], in[1], in[2]}, 1)};
          }};
}
RESIN_GRADCHECK_CASE(concat, negative_dim_mixed_layouts) {
  Generator g(302);
  return {{leaf(transposed_layout(rnd({3, 2}, g), 0, 1)), leaf(narrowed_layout(rnd({3, 4}, g), 1))},
          [](const Inputs& in) {
            return Outputs{concat({in[0], in[1]}, -1)};
          }};
}
RESIN_GRADCHECK_CASE(concat, channels_last_channels) {
  Generator g(303);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g))), leaf(rnd({2, 1, 2, 2}, g))}, [](const Inputs& in) {
            return Outputs{concat({in[0], in[1]}, 1)};
          }};
}
RESIN_GRADCHECK_CASE(concat, same_tensor_twice) {
  Generator g(304);
  return {{leaf(rnd({2, 3}, g))}, [](const Inputs& in) { return Outputs{concat({in[0], in[0]}, 0)}; }};
}
RESIN_GRADCHECK_CASE(stack, dim0) {
  Generator g(305);
  return {{leaf(rnd({2, 3}, g)), leaf(rnd({2, 3}, g))}, [](const Inputs& in) {
            return Outputs{stack({in[0], in[1]}, 0)};
          }};
}
RESIN_GRADCHECK_CASE(stack, negative_dim_noncontiguous) {
  Generator g(306);
  return {{leaf(transposed_layout(rnd({3, 2}, g), 0, 1)), leaf(rnd({3, 2}, g)), leaf(rnd({3, 2}, g))},
          [](const Inputs& in) {
            return Outputs{stack({in[0], in[1], in[2]}, -1)};
          }};
}
RESIN_GRADCHECK_CASE(split, remainder_multi_output) {
  Generator g(307);
  return {{leaf(rnd({7, 2}, g))}, [](const Inputs& in) { return split(in[0], 3, 0); }};
}
RESIN_GRADCHECK_CASE(split, negative_dim_some_outputs_unused) {
  Generator g(308);
  return {{leaf(rnd({2, 5}, g))}, [](const Inputs& in) {
            auto parts = split(in[0], 2, -1);
            return Outputs{mul(parts[0], parts[2].expand({2, 2}))};
          }};
}
RESIN_GRADCHECK_CASE(split, chunk_channels_last) {
  Generator g(309);
  return {{leaf(channels_last(rnd({1, 4, 2, 3}, g)))}, [](const Inputs& in) { return chunk(in[0], 2, 1); }};
}

// ---- pad
RESIN_GRADCHECK_CASE(pad, last_two_dims) {
  Generator g(310);
  return {{leaf(rnd({2, 3, 3}, g))}, [](const Inputs& in) { return Outputs{pad(in[0], {1, 2, 0, 1})}; }};
}
RESIN_GRADCHECK_CASE(pad, negative_crop_and_value) {
  Generator g(311);
  return {{leaf(rnd({3, 5}, g))}, [](const Inputs& in) { return Outputs{pad(in[0], {-1, 2, 1, -2}, 0.5)}; }};
}
RESIN_GRADCHECK_CASE(pad, option_a_channel_zero_padding) {
  // The option-A shortcut: subsample spatially, then zero-pad the channels (dim 1) on both sides.
  Generator g(312);
  return {{leaf(rnd({2, 3, 4, 4}, g))}, [](const Inputs& in) {
            Tensor sub = in[0].narrow(2, 0, 4).narrow(3, 0, 4);
            Tensor s2 = max_pool2d(sub, {.kernel = {1}, .stride = {2}});
            return Outputs{pad(s2, {0, 0, 0, 0, 2, 3})};
          }};
}
RESIN_GRADCHECK_CASE(pad, option_a_channels_last) {
  Generator g(313);
  return {{leaf(channels_last(rnd({1, 3, 2, 2}, g)))}, [](const Inputs& in) {
            return Outputs{pad(in[0], {0, 0, 0, 0, 1, 1})};
          }};
}
RESIN_GRADCHECK_CASE(pad, transposed_input) {
  Generator g(314);
  return {{leaf(transposed_layout(rnd({3, 4}, g), 0, 1))}, [](const Inputs& in) {
            return Outputs{pad(in[0], {2, 0})};
          }};
}

// ---- views and copies
RESIN_GRADCHECK_CASE(reshape, contiguous_infer) {
  Generator g(315);
  return {{leaf(rnd({2, 3, 4}, g))}, [](const Inputs& in) {
            return Outputs{mul(in[0].reshape({4, -1}), 2.0)};
          }};
}
RESIN_GRADCHECK_CASE(reshape, noncontiguous_copies) {
  Generator g(316);
  return {{leaf(transposed_layout(rnd({3, 4}, g), 0, 1))}, [](const Inputs& in) {
            return Outputs{in[0].reshape({2, 6})};
          }};
}
RESIN_GRADCHECK_CASE(reshape, flatten_unsqueeze_squeeze) {
  Generator g(317);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g)))},
          [](const Inputs& in) { return Outputs{in[0].flatten(1).unsqueeze(-1).squeeze(2).unsqueeze(0)}; }};
}
RESIN_GRADCHECK_CASE(permute, four_d_negative_dims) {
  Generator g(318);
  return {{leaf(rnd({2, 3, 4, 1}, g))}, [](const Inputs& in) {
            return Outputs{mul(in[0].permute({-1, 2, 0, 1}), 1.5)};
          }};
}
RESIN_GRADCHECK_CASE(permute, transpose_then_matmul) {
  Generator g(319);
  return {{leaf(rnd({3, 4}, g))},
          [](const Inputs& in) { return Outputs{matmul(in[0].transpose(0, 1), in[0])}; }};
}
RESIN_GRADCHECK_CASE(narrow, middle_window) {
  Generator g(320);
  return {{leaf(rnd({3, 6}, g))}, [](const Inputs& in) { return Outputs{in[0].narrow(1, 2, 3)}; }};
}
RESIN_GRADCHECK_CASE(narrow, negative_dim_and_select) {
  Generator g(321);
  return {{leaf(transposed_layout(rnd({4, 3, 2}, g), 0, 2))}, [](const Inputs& in) {
            return Outputs{in[0].narrow(-2, 1, 2), in[0].select(0, -1)};
          }};
}
RESIN_GRADCHECK_CASE(narrow, overlapping_windows) {
  Generator g(322);
  return {{leaf(rnd({6}, g))},
          [](const Inputs& in) { return Outputs{mul(in[0].narrow(0, 0, 4), in[0].narrow(0, 2, 4))}; }};
}
RESIN_GRADCHECK_CASE(expand, leading_and_size1_dims) {
  Generator g(323);
  return {{leaf(rnd({3, 1}, g))}, [](const Inputs& in) {
            return Outputs{mul(in[0].expand({2, 3, 4}), 1.0)};
          }};
}
RESIN_GRADCHECK_CASE(expand, minus_one_keeps_size) {
  Generator g(324);
  return {{leaf(rnd({1, 4}, g))}, [](const Inputs& in) {
            return Outputs{in[0].expand({3, -1}).contiguous()};
          }};
}
RESIN_GRADCHECK_CASE(contiguous, from_transposed) {
  Generator g(325);
  return {{leaf(transposed_layout(rnd({3, 4}, g), 0, 1))},
          [](const Inputs& in) { return Outputs{in[0].contiguous()}; }};
}
RESIN_GRADCHECK_CASE(contiguous, to_channels_last_and_back) {
  Generator g(326);
  return {{leaf(rnd({2, 3, 2, 2}, g))}, [](const Inputs& in) {
            Tensor cl = in[0].contiguous(MemoryFormat::channels_last);
            return Outputs{mul(cl, cl).contiguous()};
          }};
}
RESIN_GRADCHECK_CASE(contiguous, clone) {
  Generator g(327);
  return {{leaf(narrowed_layout(rnd({2, 3}, g), 0))},
          [](const Inputs& in) { return Outputs{in[0].clone()}; }};
}

// ---- losses
namespace {
Tensor targets() { return i64({2, 0, 4, 4}, {4}); }
GradFn ce(CrossEntropyOptions o) {
  return [o](const Inputs& in) { return Outputs{cross_entropy(in[0], in[1], o)}; };
}
}  // namespace

RESIN_GRADCHECK_CASE(cross_entropy, mean) {
  Generator g(328);
  return {{leaf(rnd({4, 5}, g, -2, 2)), targets()}, ce({})};
}
RESIN_GRADCHECK_CASE(cross_entropy, sum_label_smoothing) {
  Generator g(329);
  return {{leaf(rnd({4, 5}, g, -2, 2)), targets()},
          ce({.reduction = Reduction::sum, .label_smoothing = 0.1})};
}
RESIN_GRADCHECK_CASE(cross_entropy, none_label_smoothing_transposed) {
  Generator g(330);
  return {{leaf(transposed_layout(rnd({4, 5}, g, -2, 2), 0, 1)), targets()},
          ce({.reduction = Reduction::none, .label_smoothing = 0.25})};
}
RESIN_GRADCHECK_CASE(cross_entropy, mean_label_smoothing_batch1) {
  Generator g(331);
  return {{leaf(rnd({1, 3}, g, -2, 2)), i64({1}, {1})}, ce({.label_smoothing = 0.2})};
}
RESIN_GRADCHECK_CASE(nll_loss, mean) {
  Generator g(332);
  return {{leaf(rnd({4, 5}, g)), targets()},
          [](const Inputs& in) { return Outputs{nll_loss(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(nll_loss, sum_of_log_softmax) {
  Generator g(333);
  return {{leaf(rnd({4, 5}, g)), targets()},
          [](const Inputs& in) { return Outputs{nll_loss(log_softmax(in[0], 1), in[1], Reduction::sum)}; }};
}
RESIN_GRADCHECK_CASE(nll_loss, none_noncontiguous) {
  Generator g(334);
  return {{leaf(narrowed_layout(rnd({4, 5}, g), 1)), targets()},
          [](const Inputs& in) { return Outputs{nll_loss(in[0], in[1], Reduction::none)}; }};
}
RESIN_GRADCHECK_CASE(mse_loss, mean) {
  Generator g(335);
  return {{leaf(rnd({3, 4}, g)), leaf(rnd({3, 4}, g))},
          [](const Inputs& in) { return Outputs{mse_loss(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(mse_loss, sum_noncontiguous_target) {
  Generator g(336);
  return {{leaf(rnd({3, 4}, g)), leaf(transposed_layout(rnd({3, 4}, g), 0, 1))},
          [](const Inputs& in) { return Outputs{mse_loss(in[0], in[1], Reduction::sum)}; }};
}
RESIN_GRADCHECK_CASE(mse_loss, none_channels_last) {
  Generator g(337);
  return {{leaf(channels_last(rnd({1, 3, 2, 2}, g))), rnd({1, 3, 2, 2}, g)},
          [](const Inputs& in) { return Outputs{mse_loss(in[0], in[1], Reduction::none)}; }};
}

}  // namespace resin::testing
