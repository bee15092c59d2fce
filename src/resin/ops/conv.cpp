// 2-D convolution. The output keeps the input's physical layout.
#include <string>

#include "resin/core/autocast.h"
#include "resin/ops/detail.h"
#include "resin/ops/profile.h"

namespace resin {
using namespace detail;

namespace {

std::pair<int64_t, int64_t> pair_of(const std::vector<int64_t>& v, const char* what) {
  RESIN_CHECK(v.size() == 1 || v.size() == 2, "conv2d: ", what, " needs 1 or 2 values, got ", v.size());
  return {v[0], v.size() == 2 ? v[1] : v[0]};
}

struct Conv2dBackward : Node {
  Tensor x, w;
  backend::Conv2dParams p;
  bool has_bias = false;
  DType compute = DType::f32;  // the autocast type of the forward pass; the gradients use it too
  std::string name() const override { return "Conv2dBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override { x = w = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    AutocastGuard autocast(compute);
    Tensor gy = g[0];
    Tensor gx, gw, gb;
    if (needs_input_grad(0)) gx = empty_like(x);
    if (needs_input_grad(1) || needs_input_grad(2)) {
      gw = empty_like(w);
      if (has_bias && needs_input_grad(2)) gb = empty(Shape{w.size(0)}, like(w));
    }
    be(x).conv2d_backward(x, gy, w, gx, gw, gb, p);
    if (!needs_input_grad(1)) gw = Tensor();
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o) {
  check_floating(x, "conv2d");
  check_defined(w, "conv2d", "weight");
  check_same_dtype(x, w, "conv2d");
  RESIN_CHECK(x.dim() == 4, "conv2d: expected a 4-D NCHW input, got shape ", x.shape());
  RESIN_CHECK(w.dim() == 4, "conv2d: expected a 4-D weight [out, in/groups, kh, kw], got shape ", w.shape());
  RESIN_CHECK(o.groups >= 1, "conv2d: groups must be >= 1, got ", o.groups);
  // Divided, not multiplied: groups can come from a file (ONNX) and the product could overflow.
  if (x.size(1) % o.groups != 0 || x.size(1) / o.groups != w.size(1)) {
    int64_t want = 0;
    const bool too_big = __builtin_mul_overflow(w.size(1), o.groups, &want);
    RESIN_FAIL("conv2d: input has ", x.size(1), " channels, weight ", w.shape(), " with groups=", o.groups,
               " expects ", too_big ? std::string("more than 2^63") : std::to_string(want));
  }
  RESIN_CHECK(w.size(0) % o.groups == 0, "conv2d: ", w.size(0), " output channels not divisible by groups=", o.groups);
  auto [sh, sw] = pair_of(o.stride, "stride");
  auto [ph, pw] = pair_of(o.padding, "padding");
  auto [dh, dw] = pair_of(o.dilation, "dilation");
  RESIN_CHECK(sh > 0 && sw > 0, "conv2d: stride must be positive, got ", sh, "x", sw);
  RESIN_CHECK(dh > 0 && dw > 0, "conv2d: dilation must be positive, got ", dh, "x", dw);
  RESIN_CHECK(ph >= 0 && pw >= 0, "conv2d: padding must be non-negative, got ", ph, "x", pw);
  const int64_t kh = w.size(2), kw = w.size(3);
  RESIN_CHECK(kh > 0 && kw > 0, "conv2d: empty kernel ", w.shape());
  // Geometry from a file can be huge: every product is checked (an overflow is an error, not UB).
  int64_t oh = 0, ow = 0;
  RESIN_CHECK(backend::conv_output_size(x.size(2), kh, sh, ph, dh, &oh) &&
                  backend::conv_output_size(x.size(3), kw, sw, pw, dw, &ow),
              "conv2d: input ", x.shape(), " is smaller than the (dilated) kernel ", kh, "x", kw, " with padding ", ph,
              "x", pw, " and dilation ", dh, "x", dw, ", or those are out of range");
  if (bias.defined()) {
    check_same_dtype(x, bias, "conv2d");
    RESIN_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "conv2d: bias shape ", bias.shape(), ", expected [",
                w.size(0), "]");
  }
  backend::Conv2dParams p{sh, sw, ph, pw, dh, dw, o.groups};
  Shape ys{x.size(0), w.size(0), oh, ow};
  Tensor y = x.suggest_memory_format() == MemoryFormat::channels_last
                 ? empty_strided(ys, channels_last_strides(ys), like(x))
                 : empty(ys, like(x));
  MacCounter::add(ys.numel() * w.size(1) * kh * kw);
  be(x).conv2d_forward(x.detach(), w.detach(), bias.defined() ? bias.detach() : Tensor(), y, p);
  if (autograd::any_requires_grad({&x, &w, &bias})) {
    auto n = std::make_shared<Conv2dBackward>();
    n->x = x.detach();
    n->w = w.detach();
    n->p = p;
    n->has_bias = bias.defined();
    n->compute = autocast_dtype();
    record(n, {&x, &w, &bias}, {&y});
  }
  return y;
}

}  // namespace resin
