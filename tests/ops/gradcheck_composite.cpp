// Gradcheck of whole residual blocks: every op's backward composed the way the networks use them
// (training-mode batch norm, option-A and option-B shortcuts, channels-last, a classifier head).
#include "../support/gradcheck.h"

namespace resin::testing {
namespace {

Tensor bn_train(const Tensor& x, const Tensor& w, const Tensor& b) {
  return batch_norm(x, {}, {}, w, b, /*training=*/true, 0.1, 1e-5);
}

}  // namespace

// Pre-ResNet-style basic block with the option-A shortcut: subsample by 2 and zero-pad channels.
RESIN_GRADCHECK_CASE(conv2d, resnet_basic_block_option_a) {
  Generator g(401);
  return {{leaf(rnd({2, 3, 6, 6}, g)), leaf(rnd({5, 3, 3, 3}, g)), leaf(rnd({5}, g, 0.5, 1.5)),
           leaf(rnd({5}, g)), leaf(rnd({5, 5, 3, 3}, g)), leaf(rnd({5}, g, 0.5, 1.5)), leaf(rnd({5}, g))},
          [](const Inputs& in) {
            Tensor h = relu(bn_train(conv2d(in[0], in[1], {}, {.stride = {2}, .padding = {1}}), in[2], in[3]));
            h = bn_train(conv2d(h, in[4], {}, {.padding = {1}}), in[5], in[6]);
            Tensor sc = pad(max_pool2d(in[0], {.kernel = {1}, .stride = {2}}), {0, 0, 0, 0, 1, 1});
            return Outputs{relu(add(h, sc))};
          }};
}

// Bottleneck with a projection (option-B) shortcut, channels-last activations, then global average
// pooling, a linear classifier and cross-entropy with label smoothing: one scalar loss.
RESIN_GRADCHECK_CASE(conv2d, bottleneck_option_b_channels_last_to_loss) {
  Generator g(402);
  Inputs in = {leaf(channels_last(rnd({2, 4, 5, 5}, g))),  // 0 x
               leaf(rnd({2, 4, 1, 1}, g)),                  // 1 reduce 1x1
               leaf(rnd({2, 2, 3, 3}, g)),                  // 2 3x3 stride 2
               leaf(rnd({6, 2, 1, 1}, g)),                  // 3 expand 1x1
               leaf(rnd({6, 4, 1, 1}, g)),                  // 4 shortcut 1x1 stride 2
               leaf(rnd({6}, g, 0.5, 1.5)),                 // 5 bn gamma (last bn)
               leaf(rnd({6}, g)),                           // 6 bn beta
               leaf(rnd({3, 6}, g)),                        // 7 classifier weight
               leaf(rnd({3}, g)),                           // 8 classifier bias
               i64({2, 0}, {2})};                           // 9 targets
  return {in, [](const Inputs& v) {
            Tensor h = relu(bn_train(conv2d(v[0], v[1]), {}, {}));
            h = relu(bn_train(conv2d(h, v[2], {}, {.stride = {2}, .padding = {1}}), {}, {}));
            h = bn_train(conv2d(h, v[3]), v[5], v[6]);
            Tensor sc = bn_train(conv2d(v[0], v[4], {}, {.stride = {2}}), {}, {});
            Tensor feat = global_avg_pool2d(relu(add(h, sc))).flatten(1);
            return Outputs{cross_entropy(linear(feat, v[7], v[8]), v[9], {.label_smoothing = 0.1})};
          }};
}

// Depthwise-separable block with dropout (fixed generator) and layer norm over channels.
RESIN_GRADCHECK_CASE(conv2d, depthwise_separable_dropout_layer_norm) {
  Generator g(403);
  return {{leaf(rnd({1, 3, 5, 5}, g)), leaf(rnd({3, 1, 3, 3}, g)), leaf(rnd({4, 3, 1, 1}, g)),
           leaf(rnd({4}, g, 0.5, 1.5))},
          [](const Inputs& in) {
            Generator mask(11);
            Tensor h = conv2d(in[0], in[1], {}, {.padding = {1}, .groups = 3});
            h = conv2d(dropout(gelu(h), 0.2, true, &mask), in[2]);
            return Outputs{layer_norm(h.permute({0, 2, 3, 1}), {4}, in[3])};
          }};
}

}  // namespace resin::testing
