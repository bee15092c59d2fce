// Gradcheck cases for the neural-network ops: conv2d (odd channels, groups, depthwise, stride 2,
// dilation 2, 7x7 with padding 3, batch 1, channels-last and non-contiguous inputs), batch_norm
// (training with running stats, eval), layer_norm, pooling, softmax, dropout and embedding.
#include "../support/gradcheck.h"

namespace resin::testing {
namespace {

GradFn conv(Conv2dOptions o, bool bias) {
  return [o, bias](const Inputs& in) { return Outputs{conv2d(in[0], in[1], bias ? in[2] : Tensor(), o)}; };
}

}  // namespace

// ---- conv2d
RESIN_GRADCHECK_CASE(conv2d, odd_channels_pad1) {
  Generator g(201);
  return {{leaf(rnd({2, 3, 5, 5}, g)), leaf(rnd({5, 3, 3, 3}, g)), leaf(rnd({5}, g))},
          conv({.padding = {1, 1}}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, groups3_stride2) {
  Generator g(202);
  return {{leaf(rnd({1, 6, 7, 7}, g)), leaf(rnd({9, 2, 3, 3}, g)), leaf(rnd({9}, g))},
          conv({.stride = {2, 2}, .groups = 3}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, depthwise_multiplier2) {
  Generator g(203);
  return {{leaf(rnd({2, 4, 5, 5}, g)), leaf(rnd({8, 1, 3, 3}, g))},
          conv({.padding = {1}, .groups = 4}, false)};
}
RESIN_GRADCHECK_CASE(conv2d, depthwise_stride2_channels_last) {
  Generator g(204);
  return {{leaf(channels_last(rnd({1, 5, 6, 6}, g))), leaf(rnd({5, 1, 3, 3}, g)), leaf(rnd({5}, g))},
          conv({.stride = {2}, .padding = {1}, .groups = 5}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, dilation2) {
  Generator g(205);
  return {{leaf(rnd({1, 2, 7, 7}, g)), leaf(rnd({3, 2, 3, 3}, g)), leaf(rnd({3}, g))},
          conv({.padding = {2, 2}, .dilation = {2, 2}}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, kernel7_pad3_stride2) {
  Generator g(206);
  return {{leaf(rnd({1, 2, 8, 8}, g)), leaf(rnd({3, 2, 7, 7}, g))},
          conv({.stride = {2}, .padding = {3}}, false)};
}
RESIN_GRADCHECK_CASE(conv2d, channels_last_stride2) {
  Generator g(207);
  return {{leaf(channels_last(rnd({2, 3, 5, 5}, g))), leaf(rnd({4, 3, 3, 3}, g)), leaf(rnd({4}, g))},
          conv({.stride = {2, 2}, .padding = {1, 1}}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, channels_last_weight) {
  Generator g(208);
  return {{leaf(channels_last(rnd({1, 3, 4, 4}, g))), leaf(channels_last(rnd({2, 3, 3, 3}, g)))},
          conv({.padding = {1}}, false)};
}
RESIN_GRADCHECK_CASE(conv2d, transposed_input) {
  Generator g(209);
  return {
      {leaf(transposed_layout(rnd({2, 2, 5, 4}, g), 2, 3)), leaf(rnd({3, 2, 3, 2}, g)), leaf(rnd({3}, g))},
      conv({}, true)};
}
RESIN_GRADCHECK_CASE(conv2d, asymmetric_stride_padding) {
  Generator g(210);
  return {{leaf(rnd({1, 3, 6, 5}, g)), leaf(rnd({2, 3, 3, 2}, g))},
          conv({.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}, false)};
}
RESIN_GRADCHECK_CASE(conv2d, pointwise_downsample_batch1) {
  Generator g(211);
  return {{leaf(rnd({1, 5, 6, 6}, g)), leaf(rnd({3, 5, 1, 1}, g))}, conv({.stride = {2}}, false)};
}
RESIN_GRADCHECK_CASE(conv2d, only_weight_requires_grad) {
  Generator g(212);
  return {{rnd({2, 2, 4, 4}, g), leaf(rnd({2, 2, 3, 3}, g)), leaf(rnd({2}, g))},
          conv({.padding = {1}}, true)};
}

// ---- batch_norm. Running statistics are updated on every evaluation; in training the output
// does not depend on them, so the function stays deterministic.
namespace {
GradFn bn(bool training, bool affine, bool stats) {
  return [=](const Inputs& in) {
    return Outputs{batch_norm(in[0], stats ? in[3] : Tensor(), stats ? in[4] : Tensor(),
                              affine ? in[1] : Tensor(), affine ? in[2] : Tensor(), training, 0.1, 1e-5)};
  };
}
Inputs bn_inputs(Tensor x, Generator& g, bool affine = true) {
  const int64_t c = x.size(1);
  return {leaf(std::move(x)), affine ? leaf(rnd({c}, g, 0.5, 1.5)) : Tensor(),
          affine ? leaf(rnd({c}, g)) : Tensor(), rnd({c}, g), rnd({c}, g, 0.5, 2.0)};
}
}  // namespace

namespace {
GradFn bn_relu(bool training) {
  return [=](const Inputs& in) {
    return Outputs{batch_norm_relu(in[0], in[3], in[4], in[1], in[2], training, 0.1, 1e-5)};
  };
}
}  // namespace
RESIN_GRADCHECK_CASE(batch_norm_relu, train_running_stats) {
  Generator g(231);
  return {bn_inputs(rnd({3, 5, 2, 3}, g), g), bn_relu(true)};
}
RESIN_GRADCHECK_CASE(batch_norm_relu, train_channels_last) {
  Generator g(232);
  return {bn_inputs(channels_last(rnd({2, 3, 3, 3}, g)), g), bn_relu(true)};
}
RESIN_GRADCHECK_CASE(batch_norm_relu, eval) {
  Generator g(233);
  return {bn_inputs(rnd({2, 3, 2, 2}, g), g), bn_relu(false)};
}

RESIN_GRADCHECK_CASE(batch_norm, train_4d_odd_channels_running_stats) {
  Generator g(213);
  return {bn_inputs(rnd({3, 5, 2, 3}, g), g), bn(true, true, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, train_channels_last) {
  Generator g(214);
  return {bn_inputs(channels_last(rnd({2, 3, 3, 3}, g)), g), bn(true, true, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, train_batch1) {
  Generator g(215);
  return {bn_inputs(rnd({1, 3, 2, 2}, g), g), bn(true, true, false)};
}
RESIN_GRADCHECK_CASE(batch_norm, train_2d) {
  Generator g(216);
  return {bn_inputs(rnd({4, 3}, g), g), bn(true, true, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, train_3d_noncontiguous) {
  Generator g(217);
  return {bn_inputs(transposed_layout(rnd({2, 3, 4}, g), 0, 2), g), bn(true, true, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, train_no_affine) {
  Generator g(218);
  return {bn_inputs(rnd({2, 3, 2, 2}, g), g, false), bn(true, false, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, eval_affine) {
  Generator g(219);
  return {bn_inputs(rnd({2, 3, 2, 2}, g), g), bn(false, true, true)};
}
RESIN_GRADCHECK_CASE(batch_norm, eval_no_affine_channels_last) {
  Generator g(220);
  return {bn_inputs(channels_last(rnd({2, 3, 2, 3}, g)), g, false), bn(false, false, true)};
}

// ---- layer_norm
RESIN_GRADCHECK_CASE(layer_norm, affine_last_dim) {
  Generator g(221);
  return {{leaf(rnd({3, 5}, g)), leaf(rnd({5}, g, 0.5, 1.5)), leaf(rnd({5}, g))},
          [](const Inputs& in) { return Outputs{layer_norm(in[0], {5}, in[1], in[2])}; }};
}
RESIN_GRADCHECK_CASE(layer_norm, no_affine_two_dims) {
  Generator g(222);
  return {{leaf(rnd({2, 3, 4}, g))}, [](const Inputs& in) { return Outputs{layer_norm(in[0], {3, 4})}; }};
}
RESIN_GRADCHECK_CASE(layer_norm, affine_two_dims_noncontiguous) {
  Generator g(223);
  return {{leaf(transposed_layout(rnd({4, 2, 3}, g), 0, 2)), leaf(rnd({2, 3}, g)), leaf(rnd({2, 3}, g))},
          [](const Inputs& in) {
            return Outputs{layer_norm(in[0], {2, 3}, in[1], in[2], 1e-3)};
          }};
}
RESIN_GRADCHECK_CASE(layer_norm, channels_last_chw) {
  Generator g(224);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g))), leaf(rnd({3, 2, 2}, g))}, [](const Inputs& in) {
            return Outputs{layer_norm(in[0], {3, 2, 2}, in[1])};
          }};
}

// ---- pooling (max pool on tie-free inputs)
RESIN_GRADCHECK_CASE(max_pool2d, kernel2_default_stride) {
  Generator g(225);
  return {{leaf(distinct({2, 3, 4, 4}, g))}, [](const Inputs& in) { return Outputs{max_pool2d(in[0], {})}; }};
}
RESIN_GRADCHECK_CASE(max_pool2d, kernel3_stride2_pad1) {
  Generator g(226);
  return {{leaf(distinct({1, 3, 7, 7}, g))}, [](const Inputs& in) {
            return Outputs{max_pool2d(in[0], {.kernel = {3}, .stride = {2}, .padding = {1}})};
          }};
}
RESIN_GRADCHECK_CASE(max_pool2d, channels_last_kernel3_stride2_pad1) {
  Generator g(227);
  return {{leaf(channels_last(distinct({2, 3, 5, 5}, g)))}, [](const Inputs& in) {
            return Outputs{max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}})};
          }};
}
RESIN_GRADCHECK_CASE(max_pool2d, overlapping_transposed) {
  Generator g(228);
  return {{leaf(transposed_layout(distinct({1, 2, 5, 4}, g), 2, 3))}, [](const Inputs& in) {
            return Outputs{max_pool2d(in[0], {.kernel = {2, 3}, .stride = {1, 1}})};
          }};
}
RESIN_GRADCHECK_CASE(avg_pool2d, kernel2) {
  Generator g(229);
  return {{leaf(rnd({2, 3, 4, 4}, g))}, [](const Inputs& in) { return Outputs{avg_pool2d(in[0], {})}; }};
}
RESIN_GRADCHECK_CASE(avg_pool2d, kernel3_stride2_pad1_include_pad) {
  Generator g(230);
  return {{leaf(rnd({1, 3, 5, 5}, g))}, [](const Inputs& in) {
            return Outputs{avg_pool2d(in[0], {.kernel = {3}, .stride = {2}, .padding = {1}})};
          }};
}
RESIN_GRADCHECK_CASE(avg_pool2d, channels_last_exclude_pad) {
  Generator g(231);
  return {{leaf(channels_last(rnd({2, 3, 5, 4}, g)))}, [](const Inputs& in) {
            return Outputs{avg_pool2d(
                in[0], {.kernel = {3}, .stride = {2}, .padding = {1}, .count_include_pad = false})};
          }};
}
RESIN_GRADCHECK_CASE(avg_pool2d, stride1_noncontiguous) {
  Generator g(232);
  return {{leaf(narrowed_layout(rnd({1, 2, 5, 5}, g), 1))}, [](const Inputs& in) {
            return Outputs{avg_pool2d(in[0], {.kernel = {3}, .stride = {1}, .padding = {1}})};
          }};
}
RESIN_GRADCHECK_CASE(adaptive_avg_pool2d, global_channels_last) {
  Generator g(233);
  return {{leaf(channels_last(rnd({2, 3, 7, 7}, g)))},
          [](const Inputs& in) { return Outputs{global_avg_pool2d(in[0])}; }};
}
RESIN_GRADCHECK_CASE(adaptive_avg_pool2d, uneven_bins) {
  Generator g(234);
  return {{leaf(rnd({1, 2, 5, 5}, g))},
          [](const Inputs& in) { return Outputs{adaptive_avg_pool2d(in[0], 3, 3)}; }};
}
RESIN_GRADCHECK_CASE(adaptive_avg_pool2d, uneven_nonsquare_transposed) {
  Generator g(235);
  return {{leaf(transposed_layout(rnd({1, 2, 5, 7}, g), 2, 3))},
          [](const Inputs& in) { return Outputs{adaptive_avg_pool2d(in[0], 2, 3)}; }};
}

// ---- softmax / log_softmax
RESIN_GRADCHECK_CASE(softmax, dim1) {
  Generator g(236);
  return {{leaf(rnd({3, 5}, g, -2, 2))}, [](const Inputs& in) { return Outputs{softmax(in[0], 1)}; }};
}
RESIN_GRADCHECK_CASE(softmax, negative_dim_3d) {
  Generator g(237);
  return {{leaf(rnd({2, 3, 4}, g, -2, 2))}, [](const Inputs& in) { return Outputs{softmax(in[0], -2)}; }};
}
RESIN_GRADCHECK_CASE(softmax, dim0_transposed) {
  Generator g(238);
  return {{leaf(transposed_layout(rnd({4, 3}, g, -2, 2), 0, 1))},
          [](const Inputs& in) { return Outputs{softmax(in[0], 0)}; }};
}
RESIN_GRADCHECK_CASE(softmax, channels_last_over_channels) {
  Generator g(239);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g, -2, 2)))},
          [](const Inputs& in) { return Outputs{softmax(in[0], 1)}; }};
}
RESIN_GRADCHECK_CASE(softmax, size1_dims_after_permute) {
  // The incoming gradient has different strides on size-1 dims than the saved output.
  Generator g(240);
  return {{leaf(rnd({3, 1, 4}, g, -2, 2))}, [](const Inputs& in) {
            return Outputs{softmax(in[0], -1).permute({1, 0, 2})};
          }};
}
RESIN_GRADCHECK_CASE(log_softmax, dim1) {
  Generator g(241);
  return {{leaf(rnd({3, 5}, g, -2, 2))}, [](const Inputs& in) { return Outputs{log_softmax(in[0], 1)}; }};
}
RESIN_GRADCHECK_CASE(log_softmax, negative_dim_narrowed) {
  Generator g(242);
  return {{leaf(narrowed_layout(rnd({2, 3, 4}, g, -2, 2), 2))},
          [](const Inputs& in) { return Outputs{log_softmax(in[0], -1)}; }};
}
RESIN_GRADCHECK_CASE(log_softmax, channels_last_over_channels) {
  Generator g(243);
  return {{leaf(channels_last(rnd({1, 4, 2, 3}, g, -2, 2)))},
          [](const Inputs& in) { return Outputs{log_softmax(in[0], 1)}; }};
}

// ---- dropout: a fresh generator with a fixed seed inside f gives the same mask every evaluation.
RESIN_GRADCHECK_CASE(dropout, training_fixed_generator) {
  Generator g(244);
  return {{leaf(rnd({4, 5}, g))}, [](const Inputs& in) {
            Generator mask_gen(77);
            return Outputs{dropout(in[0], 0.3, true, &mask_gen)};
          }};
}
RESIN_GRADCHECK_CASE(dropout, training_channels_last) {
  Generator g(245);
  return {{leaf(channels_last(rnd({2, 3, 2, 2}, g)))}, [](const Inputs& in) {
            Generator mask_gen(78);
            return Outputs{dropout(in[0], 0.5, true, &mask_gen)};
          }};
}
RESIN_GRADCHECK_CASE(dropout, eval_is_identity) {
  Generator g(246);
  return {{leaf(rnd({3, 3}, g))}, [](const Inputs& in) { return Outputs{dropout(in[0], 0.5, false)}; }};
}
RESIN_GRADCHECK_CASE(dropout, p1_drops_everything) {
  Generator g(247);
  return {{leaf(rnd({3, 2}, g))}, [](const Inputs& in) {
            Generator mask_gen(79);
            return Outputs{mul(dropout(in[0], 1.0, true, &mask_gen), 1.0)};
          }};
}

// ---- embedding
RESIN_GRADCHECK_CASE(embedding, repeated_indices_2d) {
  Generator g(248);
  Tensor idx = i64({0, 3, 3, 5, 1, 0, 3, 2}, {2, 4});
  return {{idx, leaf(rnd({6, 3}, g))}, [](const Inputs& in) { return Outputs{embedding(in[0], in[1])}; }};
}
RESIN_GRADCHECK_CASE(embedding, transposed_weight_1d_indices) {
  Generator g(249);
  Tensor idx = i64({4, 1, 4}, {3});
  return {{idx, leaf(transposed_layout(rnd({5, 2}, g), 0, 1))},
          [](const Inputs& in) { return Outputs{embedding(in[0], in[1])}; }};
}

}  // namespace resin::testing
