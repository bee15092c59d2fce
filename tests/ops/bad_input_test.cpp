// Invalid inputs throw resin::Error whose message names the op and states what was expected and
// what was got. Each check lists substrings the message must contain.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resin/resin.h"

namespace resin {
namespace {

#define EXPECT_RESIN_ERROR(stmt, ...)                                                             \
  do {                                                                                            \
    try {                                                                                         \
      (void)(stmt);                                                                               \
      ADD_FAILURE() << "expected resin::Error from: " #stmt;                                      \
    } catch (const ::resin::Error& e) {                                                           \
      const std::string msg = e.what();                                                           \
      for (const char* part : std::vector<const char*>{__VA_ARGS__})                              \
        EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing from: " << msg; \
    } catch (const std::exception& e) {                                                           \
      ADD_FAILURE() << "expected resin::Error, got another exception: " << e.what();              \
    }                                                                                             \
  } while (0)

Tensor t64(const Shape& s) { return zeros(s, {.dtype = DType::f64}); }
Tensor t32(const Shape& s) { return zeros(s); }
Tensor idx(const std::vector<double>& v) {
  return from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::i64});
}

TEST(BadInput, ElementwiseShapesAndDtypes) {
  EXPECT_RESIN_ERROR(add(t32({2, 3}), t32({4})), "add", "[2, 3]", "[4]");
  EXPECT_RESIN_ERROR(sub(t32({2, 3}), t32({3, 2})), "sub", "[2, 3]", "[3, 2]");
  EXPECT_RESIN_ERROR(mul(t32({3}), t64({3})), "mul", "f32", "f64");
  EXPECT_RESIN_ERROR(div(t64({3}), t32({3})), "div", "f64", "f32");
  EXPECT_RESIN_ERROR(add(zeros({3}, {.dtype = DType::i64}), t32({3})), "add", "floating", "i64");
  EXPECT_RESIN_ERROR(relu(zeros({3}, {.dtype = DType::i32})), "relu", "floating", "i32");
  EXPECT_RESIN_ERROR(exp(zeros({3}, {.dtype = DType::bf16})), "exp", "bf16");
  EXPECT_RESIN_ERROR(add(Tensor(), t32({3})), "add", "undefined");
  EXPECT_RESIN_ERROR(where(t32({3}), t32({3}), t64({3})), "where", "f32", "f64");
  EXPECT_RESIN_ERROR(where(t32({2}), t32({3}), t32({3})), "where", "[2]", "[3]");
  EXPECT_RESIN_ERROR(clamp(t32({3}), 1.0, -1.0), "clamp", "lo <= hi", "1", "-1");
  EXPECT_RESIN_ERROR(softplus(t32({3}), 0.0), "softplus", "beta", "0");
  EXPECT_RESIN_ERROR(mse_loss(t32({2, 3}), t32({3, 2})), "mse_loss", "[2, 3]", "[3, 2]");
  EXPECT_RESIN_ERROR(mse_loss(t32({2}), t64({2})), "mse_loss", "f32", "f64");
}

TEST(BadInput, Matmul) {
  EXPECT_RESIN_ERROR(matmul(t32({2, 3}), t32({4, 5})), "matmul", "[2, 3]", "[4, 5]", "3 vs 4");
  EXPECT_RESIN_ERROR(matmul(t32({}), t32({3})), "matmul", "at least 1 dim", "[]");
  EXPECT_RESIN_ERROR(matmul(t32({2, 2, 3}), t32({3, 3, 1})), "matmul", "[2]", "[3]");
  EXPECT_RESIN_ERROR(linear(t32({2, 3}), t32({5, 4})), "linear", "3", "[2, 3]", "expects 4");
  EXPECT_RESIN_ERROR(linear(t32({2, 3}), t32({3})), "linear", "2-D", "[3]");
  EXPECT_RESIN_ERROR(linear(t32({2, 3}), t32({4, 3}), t32({5})), "linear", "bias", "[5]", "[4]");
}

TEST(BadInput, Conv2dParameters) {
  // groups not dividing the input channels
  EXPECT_RESIN_ERROR(conv2d(t32({1, 4, 5, 5}), t32({6, 2, 3, 3}), {}, {.groups = 3}), "conv2d", "4 channels",
                     "groups=3", "expects 6");
  // groups not dividing the output channels
  EXPECT_RESIN_ERROR(conv2d(t32({1, 6, 5, 5}), t32({4, 2, 3, 3}), {}, {.groups = 3}), "conv2d",
                     "4 output channels", "groups=3");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), {}, {.groups = 0}), "conv2d", "groups",
                     "0");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), {}, {.stride = {0, 1}}), "conv2d", "stride",
                     "positive", "0x1");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), {}, {.padding = {-1}}), "conv2d", "padding",
                     "non-negative", "-1");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), {}, {.dilation = {1, 0}}), "conv2d",
                     "dilation", "1x0");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), {}, {.stride = {1, 1, 1}}), "conv2d",
                     "stride", "1 or 2 values", "3");
  // kernel bigger than the (padded) input
  EXPECT_RESIN_ERROR(conv2d(t32({1, 1, 3, 3}), t32({1, 1, 5, 5})), "conv2d", "[1, 1, 3, 3]", "5x5",
                     "smaller");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 1, 5, 5}), t32({1, 1, 3, 3}), {}, {.dilation = {3}}), "conv2d",
                     "smaller");
  // wrong ranks, channels, bias and dtypes
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5}), t32({4, 3, 3, 3})), "conv2d", "4-D", "[1, 3, 5]");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3})), "conv2d", "weight", "[4, 3, 3]");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 2, 3, 3})), "conv2d", "3 channels", "expects 2");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t32({4, 3, 3, 3}), t32({3})), "conv2d", "bias", "[3]", "[4]");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), t64({4, 3, 3, 3})), "conv2d", "f32", "f64");
  EXPECT_RESIN_ERROR(conv2d(t32({1, 3, 5, 5}), Tensor()), "conv2d", "weight", "undefined");
}

TEST(BadInput, Normalisation) {
  EXPECT_RESIN_ERROR(batch_norm(t32({2, 3, 2, 2, 2}), {}, {}, {}, {}, true), "batch_norm", "[2, 3, 2, 2, 2]");
  EXPECT_RESIN_ERROR(batch_norm(t32({2}), {}, {}, {}, {}, true), "batch_norm", "[2]");
  EXPECT_RESIN_ERROR(batch_norm(t32({2, 3, 2, 2}), t32({4}), t32({4}), {}, {}, true), "batch_norm", "[4]",
                     "3 channels");
  EXPECT_RESIN_ERROR(batch_norm(t32({2, 3}), t32({3}), t32({3}), t32({2}), {}, true), "batch_norm", "[2]",
                     "3 channels");
  EXPECT_RESIN_ERROR(batch_norm(t32({1, 3}), {}, {}, {}, {}, true), "batch_norm", "more than 1 value",
                     "[1, 3]");
  EXPECT_RESIN_ERROR(batch_norm(t32({2, 3}), {}, {}, {}, {}, false), "batch_norm", "running_mean");
  EXPECT_RESIN_ERROR(batch_norm(t32({2, 3}), t64({3}), t64({3}), {}, {}, true), "batch_norm", "f32", "f64");
  // An empty batch [0, C, L] in evaluation gives an empty result (its 4-D view once divided by N * C).
  EXPECT_EQ(batch_norm(t32({0, 3, 5}), t32({3}), t32({3}), {}, {}, false).shape(), (Shape{0, 3, 5}));
  EXPECT_RESIN_ERROR(layer_norm(t32({2, 3}), {4}), "layer_norm", "[4]", "[2, 3]");
  EXPECT_RESIN_ERROR(layer_norm(t32({3}), {1, 3}), "layer_norm", "[1, 3]", "[3]");
  EXPECT_RESIN_ERROR(layer_norm(t32({2, 3}), {3}, t32({2})), "layer_norm", "[2]", "[3]");
}

// Every op with more than one tensor operand refuses operands on two devices (the placement-check
// device cpu:1 stands in for a GPU: host memory, so an op that forgot the check would read it).
TEST(BadInput, OperandsOnTwoDevices) {
  const Device d = Device::placement_check();
  auto on = [&](const Tensor& t) { return t.to(d); };
  const Tensor x = t32({2, 3}), y = on(t32({2, 3})), img = t32({1, 2, 4, 4}), w = on(t32({2, 2, 3, 3}));
  const Tensor cond = zeros({2, 3}, {.dtype = DType::u8});
  EXPECT_RESIN_ERROR(add(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(sub(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(mul(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(div(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(add_relu(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(eq(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(where(cond, x, y), "cpu:1");
  EXPECT_RESIN_ERROR(where(on(cond), x, x), "cpu:1");
  EXPECT_RESIN_ERROR(masked_fill(x, on(cond), 1.0), "cpu:1");
  EXPECT_RESIN_ERROR(matmul(x, on(t32({3, 2}))), "cpu:1");
  EXPECT_RESIN_ERROR(linear(x, on(t32({4, 3}))), "cpu:1");
  EXPECT_RESIN_ERROR(linear(x, t32({4, 3}), on(t32({4}))), "cpu:1");
  EXPECT_RESIN_ERROR(conv2d(img, w), "cpu:1");
  EXPECT_RESIN_ERROR(conv2d(img, t32({2, 2, 3, 3}), on(t32({2}))), "cpu:1");
  EXPECT_RESIN_ERROR(batch_norm(img, {}, {}, on(t32({2})), {}, true), "cpu:1");
  EXPECT_RESIN_ERROR(batch_norm(img, on(t32({2})), on(t32({2})), {}, {}, true), "cpu:1");
  EXPECT_RESIN_ERROR(layer_norm(x, {3}, on(t32({3}))), "cpu:1");
  EXPECT_RESIN_ERROR(layer_norm(x, {3}, t32({3}), on(t32({3}))), "cpu:1");
  EXPECT_RESIN_ERROR(concat({x, y}, 0), "cpu:1");
  EXPECT_RESIN_ERROR(stack({x, y}, 0), "cpu:1");
  EXPECT_RESIN_ERROR(mse_loss(x, y), "cpu:1");
  EXPECT_RESIN_ERROR(cross_entropy(x, on(idx({0, 1}))), "cpu:1");
  EXPECT_RESIN_ERROR(nll_loss(x, on(idx({0, 1}))), "cpu:1");
  EXPECT_RESIN_ERROR(embedding(on(idx({0, 1})), x), "cpu:1");
}

TEST(BadInput, Pooling) {
  EXPECT_RESIN_ERROR(max_pool2d(t32({1, 1, 2, 2}), {.kernel = {3}}), "max_pool2d", "[1, 1, 2, 2]", "3x3");
  EXPECT_RESIN_ERROR(avg_pool2d(t32({1, 1, 4, 4}), {.kernel = {2}, .stride = {2, 0}}), "avg_pool2d", "stride",
                     "2x0");
  EXPECT_RESIN_ERROR(max_pool2d(t32({1, 1, 4, 4}), {.kernel = {2}, .padding = {2}}), "max_pool2d", "padding",
                     "2x2", "half the kernel");
  EXPECT_RESIN_ERROR(max_pool2d(t32({1, 4, 4}), {}), "max_pool2d", "4-D", "[1, 4, 4]");
  EXPECT_RESIN_ERROR(avg_pool2d(t32({1, 1, 4, 4}), {.kernel = {2, 2, 2}}), "avg_pool2d", "kernel",
                     "1 or 2 values");
  EXPECT_RESIN_ERROR(adaptive_avg_pool2d(t32({1, 1, 4, 4}), 0, 2), "adaptive_avg_pool2d", "positive", "0x2");
  EXPECT_RESIN_ERROR(adaptive_avg_pool2d(t32({4, 4}), 1, 1), "adaptive_avg_pool2d", "4-D", "[4, 4]");
}

TEST(BadInput, LossTargets) {
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), idx({1, 5})), "cross_entropy", "target 5", "index 1",
                     "[0, 5)");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), idx({-1, 0})), "cross_entropy", "target -1", "[0, 5)");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), t32({2})), "cross_entropy", "i64", "f32");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), idx({1, 2, 3})), "cross_entropy", "[2]", "[3]");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5, 3}), idx({1, 2})), "cross_entropy", "[N, C]", "[2, 5, 3]");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), idx({1, 2}), {.label_smoothing = 1.5}), "cross_entropy",
                     "label_smoothing", "1.5");
  EXPECT_RESIN_ERROR(cross_entropy(t32({2, 5}), Tensor()), "cross_entropy", "target", "undefined");
  EXPECT_RESIN_ERROR(mse_loss(t32({2}), Tensor()), "mse_loss", "target", "undefined");
  EXPECT_RESIN_ERROR(embedding(Tensor(), t32({6, 2})), "embedding", "indices", "undefined");
  EXPECT_RESIN_ERROR(nll_loss(t32({3, 4}), idx({0, 4, 1})), "nll_loss", "target 4", "[0, 4)");
  EXPECT_RESIN_ERROR(nll_loss(t32({3}), idx({0, 1, 1})), "nll_loss", "[N, C]", "[3]");
}

TEST(BadInput, EmbeddingAndDropout) {
  EXPECT_RESIN_ERROR(embedding(idx({0, 6}), t32({6, 2})), "embedding", "index 6", "[0, 6)");
  EXPECT_RESIN_ERROR(embedding(idx({-2}), t32({6, 2})), "embedding", "index -2");
  EXPECT_RESIN_ERROR(embedding(t32({2}), t32({6, 2})), "embedding", "i64", "f32");
  EXPECT_RESIN_ERROR(embedding(idx({0}), t32({6})), "embedding", "[6]");
  EXPECT_RESIN_ERROR(dropout(t32({3}), 1.5, true), "dropout", "[0, 1]", "1.5");
  EXPECT_RESIN_ERROR(dropout(t32({3}), -0.1, false), "dropout", "-0.1");
}

TEST(BadInput, DimsOutOfRange) {
  EXPECT_RESIN_ERROR(sum(t32({2, 3}), {2}), "sum", "dim 2", "2 dims", "-2..1");
  EXPECT_RESIN_ERROR(mean(t32({2, 3}), {-3}), "mean", "dim -3", "-2..1");
  EXPECT_RESIN_ERROR(max(t32({2, 3}), {1, -1}), "max", "dim 1", "twice");
  EXPECT_RESIN_ERROR(min(t32({0, 3})), "min", "empty");
  EXPECT_RESIN_ERROR(var(t32({1, 3}), {0}), "var", "1 elements", "correction 1");
  EXPECT_RESIN_ERROR(softmax(t32({2, 3}), 2), "softmax", "dim 2", "-2..1");
  EXPECT_RESIN_ERROR(log_softmax(t32({2, 3}), -3), "log_softmax", "dim -3");
  EXPECT_RESIN_ERROR(argmax(t32({2, 3}), 5), "argmax", "dim 5");
  EXPECT_RESIN_ERROR(t32({2, 3}).transpose(0, 2), "transpose", "dim 2");
  EXPECT_RESIN_ERROR(t32({2, 3}).permute({0}), "permute", "2 dims", "1");
  EXPECT_RESIN_ERROR(t32({2, 3}).permute({0, 0}), "permute", "dim 0", "repeated");
  EXPECT_RESIN_ERROR(t32({2, 3}).permute({0, 2}), "permute", "dim 2");
  EXPECT_RESIN_ERROR(t32({2, 4}).narrow(1, 2, 4), "narrow", "[2, 6)", "size 4");
  EXPECT_RESIN_ERROR(t32({2, 4}).narrow(2, 0, 1), "narrow", "dim 2");
  EXPECT_RESIN_ERROR(t32({2, 4}).select(0, 2), "select", "index 2", "size 2");
  EXPECT_RESIN_ERROR(t32({2, 4}).squeeze(3), "squeeze", "dim 3");
  EXPECT_RESIN_ERROR(t32({2, 4}).unsqueeze(4), "unsqueeze", "dim 4", "-3..2");
  EXPECT_RESIN_ERROR(t32({2, 4}).flatten(0, 3), "flatten", "dim 3");
  EXPECT_RESIN_ERROR(t32({2, 4}).size(2), "size", "dim 2");
}

TEST(BadInput, ShapeOps) {
  EXPECT_RESIN_ERROR(t32({2, 3}).reshape({4}), "reshape", "[2, 3]", "[4]");
  EXPECT_RESIN_ERROR(t32({2, 3}).reshape({-1, -1}), "reshape", "one dimension", "-1");
  EXPECT_RESIN_ERROR(t32({2, 3}).reshape({-1, 4}), "reshape", "[2, 3]", "[-1, 4]");
  EXPECT_RESIN_ERROR(t32({2, 3}).expand({2, 4}), "expand", "[2, 3]", "[2, 4]");
  EXPECT_RESIN_ERROR(t32({1, 3}).expand({-2, 3}), "expand", "[-2, 3]");
  EXPECT_RESIN_ERROR(t32({2, 3}).expand({3}), "expand", "[2, 3]", "[3]");
  EXPECT_RESIN_ERROR(concat({t32({2, 3}), t32({3, 3})}, 1), "concat", "[3, 3]", "[2, 3]", "dim 1");
  EXPECT_RESIN_ERROR(concat({t32({2, 3}), t32({2})}, 0), "concat", "1 dims", "expected 2");
  EXPECT_RESIN_ERROR(concat({t32({2, 3}), t64({2, 3})}, 0), "concat", "f32", "f64");
  EXPECT_RESIN_ERROR(concat({}, 0), "concat", "at least one");
  EXPECT_RESIN_ERROR(concat({t32({2, 3})}, 2), "concat", "dim 2");
  EXPECT_RESIN_ERROR(stack({t32({2, 3}), t32({3, 2})}, 0), "stack", "[3, 2]", "[2, 3]");
  EXPECT_RESIN_ERROR(split(t32({4}), 0, 0), "split", "positive", "0");
  EXPECT_RESIN_ERROR(chunk(t32({4}), 0, 0), "chunk", "positive", "0");
  EXPECT_RESIN_ERROR(pad(t32({2, 3}), {1}), "pad", "even", "1");
  EXPECT_RESIN_ERROR(pad(t32({2, 3}), {1, 1, 1, 1, 1, 1}), "pad", "6");
  EXPECT_RESIN_ERROR(pad(t32({2, 3}), {-2, -2}), "pad", "dim 1", "-1");
  EXPECT_RESIN_ERROR(pad(zeros({2}, {.dtype = DType::i64}), {1, 1}), "pad", "i64");
}

TEST(BadInput, TensorApi) {
  EXPECT_RESIN_ERROR(zeros({3}, {.dtype = DType::i64}).set_requires_grad(true), "set_requires_grad", "i64");
  EXPECT_RESIN_ERROR(t32({3}).data<double>(), "data", "f32", "f64");
  EXPECT_RESIN_ERROR(t32({3}).item(), "item", "[3]");
  EXPECT_RESIN_ERROR(empty({-1, 2}), "empty", "[-1, 2]");
  EXPECT_RESIN_ERROR(randint(5, 2, {3}), "randint", "5", "2");
  EXPECT_RESIN_ERROR(Tensor().dtype(), "undefined");
  EXPECT_RESIN_ERROR(Tensor().strides(), "undefined");
  EXPECT_RESIN_ERROR(Tensor().detach(), "undefined");
  EXPECT_RESIN_ERROR(t32({2}).to(Device{DeviceType::cuda, 0}), "to", "cuda:0");
  EXPECT_RESIN_ERROR(t32({2, 3}).contiguous(MemoryFormat::channels_last), "channels_last", "[2, 3]");
  EXPECT_RESIN_ERROR(wrap_dim(3, 2, "myop"), "myop", "dim 3");
  EXPECT_RESIN_ERROR(broadcast_shapes({2}, {3}, "myop"), "myop", "[2]", "[3]");
  // Undefined tensors are not silently treated as "no grad".
  Tensor u;
  EXPECT_FALSE(u.defined());
  EXPECT_FALSE(u.requires_grad());
}

}  // namespace
}  // namespace resin
