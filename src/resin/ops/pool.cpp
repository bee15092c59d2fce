// Max, average and adaptive average pooling over NCHW (any layout).
#include "resin/ops/detail.h"

namespace resin {
using namespace detail;
using backend::Pool;

namespace {

struct Pool2dBackward : Node {
  Pool kind = Pool::max;
  Tensor workspace;
  Shape x_shape;      // gx is allocated with x's shape and (dense) strides; x's data is not kept
  Strides x_strides;
  DType x_dtype = DType::f32;
  Device x_device;
  backend::Pool2dParams p;
  std::string name() const override { return kind == Pool::max ? "MaxPool2dBackward" : "AvgPool2dBackward"; }
  bool saves_tensors() const override { return kind == Pool::max; }
  void release_saved() override { workspace = Tensor(); }
  std::vector<Tensor> apply(std::vector<Tensor>&& g) override {
    Tensor gx = empty_strided(x_shape, x_strides, {.dtype = x_dtype, .device = x_device});
    be(gx).pool2d_backward(kind, g[0], workspace, gx, p);
    return {gx};
  }
};

std::pair<int64_t, int64_t> two(const std::vector<int64_t>& v, const char* op, const char* what) {
  RESIN_CHECK(v.size() == 1 || v.size() == 2, op, ": ", what, " needs 1 or 2 values, got ", v.size());
  return {v[0], v.size() == 2 ? v[1] : v[0]};
}

Tensor pool2d(Pool kind, const Tensor& x, const Pool2dOptions& o, const char* op) {
  check_floating(x, op);
  RESIN_CHECK(x.dim() == 4, op, ": expected a 4-D NCHW input, got shape ", x.shape());
  auto [kh, kw] = two(o.kernel, op, "kernel");
  auto [sh, sw] = o.stride.empty() ? std::pair<int64_t, int64_t>{kh, kw} : two(o.stride, op, "stride");
  auto [ph, pw] = two(o.padding, op, "padding");
  RESIN_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0, op, ": kernel and stride must be positive, got kernel ", kh,
              "x", kw, " stride ", sh, "x", sw);
  RESIN_CHECK(ph >= 0 && pw >= 0 && ph <= kh / 2 && pw <= kw / 2, op, ": padding ", ph, "x", pw,
              " must be between 0 and half the kernel ", kh, "x", kw);
  const int64_t oh = (x.size(2) + 2 * ph - kh) / sh + 1, ow = (x.size(3) + 2 * pw - kw) / sw + 1;
  RESIN_CHECK(x.size(2) + 2 * ph >= kh && x.size(3) + 2 * pw >= kw, op, ": input ", x.shape(),
              " is smaller than the kernel ", kh, "x", kw);
  backend::Pool2dParams p{kh, kw, sh, sw, ph, pw, o.count_include_pad};
  Shape ys{x.size(0), x.size(1), oh, ow};
  Tensor y = x.suggest_memory_format() == MemoryFormat::channels_last
                 ? empty_strided(ys, channels_last_strides(ys), like(x))
                 : empty(ys, like(x));
  Tensor ws = be(x).pool2d_forward(kind, x.detach(), y, p);
  if (autograd::any_requires_grad({&x})) {
    auto n = std::make_shared<Pool2dBackward>();
    n->kind = kind;
    n->workspace = ws;
    n->x_shape = x.shape();
    n->x_strides = x.is_non_overlapping_dense() ? x.strides() : contiguous_strides(x.shape());
    n->x_dtype = x.dtype();
    n->x_device = x.device();
    n->p = p;
    record(n, {&x}, {&y});
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& o) { return pool2d(Pool::max, x, o, "max_pool2d"); }
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o) { return pool2d(Pool::avg, x, o, "avg_pool2d"); }

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_floating(x, "adaptive_avg_pool2d");
  RESIN_CHECK(x.dim() == 4, "adaptive_avg_pool2d: expected a 4-D NCHW input, got shape ", x.shape());
  RESIN_CHECK(out_h > 0 && out_w > 0, "adaptive_avg_pool2d: output size must be positive, got ", out_h, "x", out_w);
  const int64_t H = x.size(2), W = x.size(3);
  RESIN_CHECK(H > 0 && W > 0, "adaptive_avg_pool2d: empty input ", x.shape());
  if (H % out_h == 0 && W % out_w == 0)  // uniform bins: an ordinary average pool
    return avg_pool2d(x, {.kernel = {H / out_h, W / out_w}, .stride = {H / out_h, W / out_w}});
  // Uneven bins (PyTorch's rule): start = floor(i*H/OH), end = ceil((i+1)*H/OH).
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < out_h; ++i) {
    const int64_t h0 = i * H / out_h, h1 = ((i + 1) * H + out_h - 1) / out_h;
    std::vector<Tensor> cols;
    for (int64_t j = 0; j < out_w; ++j) {
      const int64_t w0 = j * W / out_w, w1 = ((j + 1) * W + out_w - 1) / out_w;
      cols.push_back(mean(x.narrow(2, h0, h1 - h0).narrow(3, w0, w1 - w0), {2, 3}, true));
    }
    rows.push_back(concat(cols, 3));
  }
  // The [N, C, 1, 1] pieces look contiguous, so concat loses a channels-last input's layout.
  Tensor y = concat(rows, 2);
  return x.suggest_memory_format() == MemoryFormat::channels_last ? y.contiguous(MemoryFormat::channels_last) : y;
}

}  // namespace resin
