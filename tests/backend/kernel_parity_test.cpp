// oneDNN CpuBackend vs RefBackend: convolution, batch/layer norm and pooling on awkward shapes,
// in NCHW, channels-last and non-contiguous layouts. Tolerance: see parity_util.h.
#include "parity_util.h"

namespace resin::test {
namespace {

using backend::Conv2dParams;
using backend::Pool;
using backend::Pool2dParams;

const ConvCase kConvCases[] = {
    {"odd_channels_3x3", 2, 3, 9, 9, 5, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
    {"groups3_stride2_batch1", 1, 6, 11, 7, 9, 3, 3, {2, 2, 1, 1, 1, 1, 3}},
    {"depthwise", 2, 8, 10, 10, 8, 3, 3, {1, 1, 1, 1, 1, 1, 8}},
    {"depthwise_x2_k5_s2", 2, 4, 9, 11, 8, 5, 5, {2, 2, 2, 2, 1, 1, 4}},
    {"dilation2", 2, 5, 12, 12, 7, 3, 3, {1, 1, 2, 2, 2, 2, 1}},
    {"k7_pad3_stride2", 1, 3, 17, 17, 16, 7, 7, {2, 2, 3, 3, 1, 1, 1}},
    {"1x1_stride2_floor", 2, 16, 8, 8, 32, 1, 1, {2, 2, 0, 0, 1, 1, 1}},
    {"3x3_stride2_nopad_floor", 2, 7, 8, 8, 6, 3, 3, {2, 2, 0, 0, 1, 1, 1}},
    {"asymmetric", 2, 5, 9, 13, 6, 3, 2, {2, 1, 0, 1, 1, 2, 1}},
    {"blocked_32_to_64", 2, 32, 14, 14, 64, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
};

TEST(KernelParity, ConvForwardBackward) {
  for (const ConvCase& c : kConvCases)
    for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided})
      for (bool bias : {true, false}) {
        const std::string what = std::string(c.name) + "/" + layout_name(l) + (bias ? "/bias" : "");
        const Shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c / c.p.groups, c.kh, c.kw}, ys = conv_out(c);
        const Tensor x0 = rnd(xs), w0 = rnd(ws), b0 = bias ? rnd(Shape{c.o}) : Tensor(), gy0 = rnd(ys);
        const Tensor x = in_layout(x0, l), gy = in_layout(gy0, l);
        // Weights are non-contiguous in the strided case too.
        const Tensor w = l == Layout::strided ? in_layout(w0, l) : w0;
        const Layout ol = l == Layout::channels_last ? Layout::channels_last : Layout::nchw;

        Tensor y = out_like(ys, ol), y_ref = empty(ys);
        expect_path(true, what + " fwd", [&] { cpu().conv2d_forward(x, w, b0, y, c.p); });
        ref().conv2d_forward(x0, w0, b0, y_ref, c.p);
        expect_close(y, y_ref, what + " fwd");

        Tensor gx = out_like(xs, ol), gx_ref = empty(xs);
        expect_path(true, what + " bwd_data", [&] { cpu().conv2d_backward_data(gy, w, gx, c.p); });
        ref().conv2d_backward_data(gy0, w0, gx_ref, c.p);
        expect_close(gx, gx_ref, what + " bwd_data");

        Tensor gw = out_like(ws, Layout::nchw), gw_ref = empty(ws);
        Tensor gb = bias ? out_like(Shape{c.o}, Layout::nchw) : Tensor(),
               gb_ref = bias ? empty(Shape{c.o}) : Tensor();
        expect_path(true, what + " bwd_weights", [&] { cpu().conv2d_backward_weights(x, gy, gw, gb, c.p); });
        ref().conv2d_backward_weights(x0, gy0, gw_ref, gb_ref, c.p);
        expect_close(gw, gw_ref, what + " bwd_weights");
        if (bias) expect_close(gb, gb_ref, what + " bwd_bias");

        // Both gradients in one call (gy staged once when both primitives want the same layout).
        Tensor gx2 = out_like(xs, ol), gw2 = out_like(ws, Layout::nchw);
        Tensor gb2 = bias ? out_like(Shape{c.o}, Layout::nchw) : Tensor();
        expect_path(true, what + " bwd", [&] { cpu().conv2d_backward(x, gy, w, gx2, gw2, gb2, c.p); });
        expect_close(gx2, gx_ref, what + " bwd gx");
        expect_close(gw2, gw_ref, what + " bwd gw");
        if (bias) expect_close(gb2, gb_ref, what + " bwd gb");
      }
}

// Batch statistics of activations whose mean is far larger than their spread: the CPU kernels sum
// shifted values (x − one element of the channel), partly in f32, and must still give the variance
// of the f64 reference to 1e-4 (the same f32 runs over x² instead of (x − k)² lose every digit of it),
// and the mean to 1e-6.
TEST(KernelParity, BatchNormStatisticsOfALargeMean) {
  for (const Shape& s : {Shape{8, 32, 6, 5}, Shape{4, 16, 9, 9}, Shape{6, 5, 7, 3}})
    for (Layout l : {Layout::nchw, Layout::channels_last})
      for (double offset : {1000.0, -3e4}) {
        const std::string what = s.str() + "/" + layout_name(l) + "/" + std::to_string(offset);
        const int64_t C = s[1];
        const Tensor x0 = add(mul(rnd(s), 0.5), offset);
        const Tensor x = in_layout(x0, l), g = rnd(Shape{C}), b = rnd(Shape{C});
        Tensor y = out_like(s, l), m = empty(Shape{C}), v = empty(Shape{C});
        expect_path(true, what, [&] { cpu().batch_norm_forward_training(x, g, b, y, m, v, 1e-5); });
        const Tensor x64 = x0.to(DType::f64);
        Tensor y64 = empty(s, {.dtype = DType::f64}), m64 = empty(Shape{C}, {.dtype = DType::f64}),
               v64 = empty(Shape{C}, {.dtype = DType::f64});
        ref().batch_norm_forward_training(x64, g.to(DType::f64), b.to(DType::f64), y64, m64, v64, 1e-5);
        for (int64_t c = 0; c < C; ++c) {
          const double want_v = v64.data<double>()[c], want_m = m64.data<double>()[c];
          EXPECT_NEAR(v.data<float>()[c], want_v, 1e-4 * want_v) << what << " channel " << c;
          EXPECT_NEAR(m.data<float>()[c], want_m, 1e-6 * std::abs(want_m)) << what << " channel " << c;
        }
        // y is not compared: the f32 normalisation x − mean loses digits here by itself (any f32 kernel).
      }
}

// The gradient arrives in a different layout than the activation (channels-last x, NCHW gy).
TEST(KernelParity, ConvMixedLayouts) {
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x0 = rnd({2, 16, 8, 8}), w0 = rnd({16, 16, 3, 3}), gy0 = rnd({2, 16, 8, 8});
  const Tensor x = in_layout(x0, Layout::channels_last);
  Tensor gx = out_like(x0.shape(), Layout::channels_last), gx_ref = empty(x0.shape());
  cpu().conv2d_backward_data(gy0, w0, gx, p);
  ref().conv2d_backward_data(gy0, w0, gx_ref, p);
  expect_close(gx, gx_ref, "mixed bwd_data");
  Tensor gw = empty(w0.shape()), gw_ref = empty(w0.shape());
  cpu().conv2d_backward_weights(x, gy0, gw, Tensor(), p);
  ref().conv2d_backward_weights(x0, gy0, gw_ref, Tensor(), p);
  expect_close(gw, gw_ref, "mixed bwd_weights");
}

TEST(KernelParity, PrimitiveCacheHitOnRepeat) {
  const Conv2dParams p{1, 1, 0, 0, 1, 1, 1};
  const Tensor x = rnd({1, 3, 5, 13}), w = rnd({2, 3, 1, 1});  // a shape no other test uses
  Tensor y = empty({1, 2, 5, 13});
  const auto s0 = backend::CpuBackend::cache_stats();
  cpu().conv2d_forward(x, w, Tensor(), y, p);
  const auto s1 = backend::CpuBackend::cache_stats();
  EXPECT_EQ(s1.misses, s0.misses + 1);
  EXPECT_EQ(s1.hits, s0.hits);
  cpu().conv2d_forward(x, w, Tensor(), y, p);
  cpu().conv2d_forward(rnd({1, 3, 5, 13}), w, Tensor(), y, p);  // other data, same geometry
  const auto s2 = backend::CpuBackend::cache_stats();
  EXPECT_EQ(s2.misses, s1.misses);
  EXPECT_EQ(s2.hits, s1.hits + 2);
  // A different stride is a different primitive.
  cpu().conv2d_forward(x, w, Tensor(), empty({1, 2, 3, 7}), {2, 2, 0, 0, 1, 1, 1});
  EXPECT_EQ(backend::CpuBackend::cache_stats().misses, s2.misses + 1);
}

TEST(KernelParity, NotF32FallsBack) {
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x = rnd({1, 3, 5, 5}).to(DType::f64), w = rnd({4, 3, 3, 3}).to(DType::f64);
  Tensor y = empty({1, 4, 5, 5}, {.dtype = DType::f64}), y_ref = empty({1, 4, 5, 5}, {.dtype = DType::f64});
  expect_path(false, "f64 conv", [&] { cpu().conv2d_forward(x, w, Tensor(), y, p); });
  ref().conv2d_forward(x, w, Tensor(), y_ref, p);
  EXPECT_EQ(y.to_vector(), y_ref.to_vector());
}

// The fused kernels against the reference backend's composition (BN then ReLU; ReLU mask then BN
// backward; add then ReLU).
TEST(KernelParity, FusedBatchNormReluAndAddRelu) {
  for (const Shape& s : {Shape{2, 5, 7, 3}, Shape{3, 32, 6, 5}, Shape{4, 16, 1, 1}})
    for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
      const std::string what = s.str() + "/" + layout_name(l);
      const int64_t C = s[1];
      const Tensor x0 = add(mul(rnd(s), 3.0), 0.5), gy0 = rnd(s), b0 = rnd(s);
      const Tensor x = in_layout(x0, l), gy = in_layout(gy0, l), b = in_layout(b0, l);
      const Tensor g = rnd(Shape{C}), beta = rnd(Shape{C});
      const Layout ol = l == Layout::strided ? Layout::nchw : l;

      Tensor y = out_like(s, ol), m = empty(Shape{C}), v = empty(Shape{C});
      Tensor y_ref = empty(s), m_ref = empty(Shape{C}), v_ref = empty(Shape{C});
      expect_path(true, what + " bn_relu", [&] { cpu().batch_norm_relu_forward_training(x, g, beta, y, m, v, 1e-5); });
      ref().batch_norm_relu_forward_training(x0, g, beta, y_ref, m_ref, v_ref, 1e-5);
      expect_close(y, y_ref, what + " bn_relu y");
      expect_close(m, m_ref, what + " bn_relu mean");
      expect_close(v, v_ref, what + " bn_relu var");
      double zeros = 0;
      for (double e : y_ref.to_vector()) zeros += e == 0.0;
      EXPECT_GT(zeros, 0) << what << ": the ReLU never clamped, the mask is untested";

      Tensor gx = out_like(s, ol), gg = empty(Shape{C}), gb = empty(Shape{C});
      Tensor gx_ref = empty(s), gg_ref = empty(Shape{C}), gb_ref = empty(Shape{C});
      const Tensor yl = in_layout(y_ref, ol);
      expect_path(true, what + " bn_relu bwd",
                  [&] { cpu().batch_norm_relu_backward(x, yl, gy, m_ref, v_ref, g, gx, gg, gb, 1e-5); });
      ref().batch_norm_relu_backward(x0, y_ref, gy0, m_ref, v_ref, g, gx_ref, gg_ref, gb_ref, 1e-5);
      expect_close(gx, gx_ref, what + " bn_relu gx");
      expect_close(gg, gg_ref, what + " bn_relu ggamma");
      expect_close(gb, gb_ref, what + " bn_relu gbeta");

      Tensor z = out_like(s, ol), z_ref = empty(s);
      expect_path(true, what + " add_relu", [&] { cpu().add_relu(x, b, z); });
      ref().add_relu(x0, b0, z_ref);
      expect_close(z, z_ref, what + " add_relu");

      // add_relu's backward with the gradient sum fused in, and with one gradient. The add and the
      // mask are exact, so the results must be equal, not close. A NaN gradient where the ReLU was
      // off stays 0 (the mask is a select, not a product).
      Tensor gy2_0 = rnd(s);
      const auto zr = z_ref.to_vector();
      const auto off = std::find_if(zr.begin(), zr.end(), [](double v) { return v <= 0; });
      ASSERT_NE(off, zr.end()) << what << ": the ReLU never clamped";
      gy2_0.data<float>()[off - zr.begin()] = std::numeric_limits<float>::quiet_NaN();  // where it was off
      const Tensor gy2 = in_layout(gy2_0, l), zl = in_layout(z_ref, ol);
      for (bool two : {true, false}) {
        Tensor ga = out_like(s, ol), ga_ref = empty(s);
        auto run = [&] { cpu().add_relu_backward(zl, gy, two ? gy2 : Tensor(), ga); };
        if (ol == l)
          expect_native(what + " add_relu bwd", run);
        else
          run();  // strided inputs: the composition (an add, then the ReLU kernel on dense copies)
        ref().add_relu_backward(z_ref, gy0, two ? gy2_0 : Tensor(), ga_ref);
        const auto got = ga.to_vector(), want = ga_ref.to_vector(), zv = z_ref.to_vector();
        for (size_t i = 0; i < got.size(); ++i) {
          if (std::isnan(want[i])) {
            EXPECT_TRUE(std::isnan(got[i])) << what << " at " << i;
          } else {
            EXPECT_EQ(got[i], want[i]) << what << (two ? " sum" : " single") << " at " << i;
          }
          if (zv[i] <= 0) {
            EXPECT_EQ(got[i], 0.0) << what << " masked at " << i;
          }
        }
      }
    }
}

// A NaN must come out of every ReLU (plain and fused, both backends) as NaN, never as 0: the
// trainer's non-finite guard relies on diverged activations reaching the loss.
TEST(KernelParity, ReluKeepsNaN) {
  const double nan = std::nan("");
  const Shape s{2, 16, 3, 3};
  Tensor x = add(mul(rnd(s), 3.0), 0.5);
  x.data<float>()[5] = static_cast<float>(nan);      // one element of channel 0
  for (Backend* be : {&cpu(), &ref()}) {
    const std::string name = be == &cpu() ? "cpu" : "ref";
    auto nans = [](const Tensor& t) {
      int64_t n = 0;
      for (double e : t.to_vector()) n += std::isnan(e);
      return n;
    };
    Tensor r = empty(s);
    be->unary(backend::Unary::relu, x, r, {});
    EXPECT_EQ(nans(r), 1) << name << " relu";
    Tensor z = empty(s);
    be->add_relu(x, zeros(s), z);
    EXPECT_EQ(nans(z), 1) << name << " add_relu";
    // The NaN poisons its channel's statistics, so the whole channel (18 elements) is NaN.
    Tensor y = empty(s), m = empty(Shape{16}), v = empty(Shape{16});
    be->batch_norm_relu_forward_training(x, ones(Shape{16}), zeros(Shape{16}), y, m, v, 1e-5);
    EXPECT_EQ(nans(y), 18) << name << " batch_norm_relu";
    // Backward: a NaN gradient passes where the ReLU was on (and at the NaN input) and is 0 where it
    // was off: PyTorch's threshold_backward selects, it does not multiply by the mask.
    Tensor ng = full(s, nan), gx = empty(s), xr = relu(x);
    be->unary_backward(backend::Unary::relu, xr, xr, ng, gx, {});
    const auto xv = xr.to_vector(), gv = gx.to_vector();
    for (size_t i = 0; i < gv.size(); ++i)
      if (xv[i] <= 0)
        EXPECT_EQ(gv[i], 0.0) << name << " relu backward at " << i;
      else  // also at the NaN input
        EXPECT_TRUE(std::isnan(gv[i])) << name << " relu backward at " << i;
  }
}

TEST(KernelParity, BatchNorm) {
  const Shape shapes[] = {{2, 5, 7, 3}, {1, 3, 4, 4}, {4, 17, 1, 1}, {3, 32, 6, 5}};
  for (const Shape& s : shapes)
    for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided})
      for (int affine = 0; affine < 3; ++affine) {  // 0: gamma+beta, 1: gamma only, 2: none
        const std::string what = s.str() + "/" + layout_name(l) + "/affine" + std::to_string(affine);
        const int64_t C = s[1];
        const double eps = 1e-5;
        const Tensor x0 = add(mul(rnd(s), 3.0), 0.5), gy0 = rnd(s);
        const Tensor x = in_layout(x0, l), gy = in_layout(gy0, l);
        const Tensor g = affine < 2 ? rnd(Shape{C}) : Tensor(), b = affine == 0 ? rnd(Shape{C}) : Tensor();
        const Layout ol = l == Layout::strided ? Layout::nchw : l;

        Tensor y = out_like(s, ol), m = empty(Shape{C}), v = empty(Shape{C});
        Tensor y_ref = empty(s), m_ref = empty(Shape{C}), v_ref = empty(Shape{C});
        expect_path(true, what + " train", [&] { cpu().batch_norm_forward_training(x, g, b, y, m, v, eps); });
        ref().batch_norm_forward_training(x0, g, b, y_ref, m_ref, v_ref, eps);
        expect_close(y, y_ref, what + " train y");
        expect_close(m, m_ref, what + " mean");
        expect_close(v, v_ref, what + " var");

        Tensor yi = out_like(s, ol), yi_ref = empty(s);
        expect_path(true, what + " infer",
                    [&] { cpu().batch_norm_forward_inference(x, g, b, m_ref, v_ref, yi, eps); });
        ref().batch_norm_forward_inference(x0, g, b, m_ref, v_ref, yi_ref, eps);
        expect_close(yi, yi_ref, what + " infer y");

        for (int outs = 0; outs < 3; ++outs) {  // 0: all grads, 1: gx only, 2: params only
          const std::string w2 = what + " bwd" + std::to_string(outs);
          Tensor gx = outs < 2 ? out_like(s, ol) : Tensor(), gx_ref = outs < 2 ? empty(s) : Tensor();
          Tensor gg = outs != 1 ? empty(Shape{C}) : Tensor(), gg_ref = outs != 1 ? empty(Shape{C}) : Tensor();
          Tensor gb = outs != 1 ? empty(Shape{C}) : Tensor(), gb_ref = outs != 1 ? empty(Shape{C}) : Tensor();
          expect_path(true, w2, [&] { cpu().batch_norm_backward(x, gy, m_ref, v_ref, g, gx, gg, gb, eps); });
          ref().batch_norm_backward(x0, gy0, m_ref, v_ref, g, gx_ref, gg_ref, gb_ref, eps);
          if (gx.defined()) expect_close(gx, gx_ref, w2 + " gx");
          if (gg.defined()) expect_close(gg, gg_ref, w2 + " ggamma");
          if (gb.defined()) expect_close(gb, gb_ref, w2 + " gbeta");
        }
      }
}

TEST(KernelParity, LayerNorm) {
  const Shape shapes[] = {{7, 13}, {1, 5}, {33, 300}, {4, 1024}};
  for (const Shape& s : shapes)
    for (int affine = 0; affine < 3; ++affine) {
      const std::string what = s.str() + "/affine" + std::to_string(affine);
      const int64_t M = s[0], N = s[1];
      const double eps = 1e-5;
      const Tensor x = add(mul(rnd(s), 2.0), -1.0), gy = rnd(s);
      const Tensor g = affine < 2 ? rnd(Shape{N}) : Tensor(), b = affine == 0 ? rnd(Shape{N}) : Tensor();
      Tensor y = out_like(s, Layout::nchw), m = empty(Shape{M}), r = empty(Shape{M});
      Tensor y_ref = empty(s), m_ref = empty(Shape{M}), r_ref = empty(Shape{M});
      expect_path(true, what + " fwd", [&] { cpu().layer_norm_forward(x, g, b, y, m, r, eps); });
      ref().layer_norm_forward(x, g, b, y_ref, m_ref, r_ref, eps);
      expect_close(y, y_ref, what + " y");
      expect_close(m, m_ref, what + " mean");
      expect_close(r, r_ref, what + " rstd");
      for (int outs = 0; outs < 3; ++outs) {
        const std::string w2 = what + " bwd" + std::to_string(outs);
        Tensor gx = outs < 2 ? empty(s) : Tensor(), gx_ref = outs < 2 ? empty(s) : Tensor();
        Tensor gg = outs != 1 ? empty(Shape{N}) : Tensor(), gg_ref = outs != 1 ? empty(Shape{N}) : Tensor();
        Tensor gb = outs != 1 ? empty(Shape{N}) : Tensor(), gb_ref = outs != 1 ? empty(Shape{N}) : Tensor();
        expect_path(true, w2, [&] { cpu().layer_norm_backward(x, gy, m_ref, r_ref, g, gx, gg, gb); });
        ref().layer_norm_backward(x, gy, m_ref, r_ref, g, gx_ref, gg_ref, gb_ref);
        if (gx.defined()) expect_close(gx, gx_ref, w2 + " gx");
        if (gg.defined()) expect_close(gg, gg_ref, w2 + " ggamma");
        if (gb.defined()) expect_close(gb, gb_ref, w2 + " gbeta");
      }
    }
}

struct PoolCase {
  const char* name;
  Shape x;
  Pool2dParams p;
};

const PoolCase kPoolCases[] = {
    {"resnet_stem_k3s2p1", {2, 5, 9, 9}, {3, 3, 2, 2, 1, 1, true}},
    {"k2s2_odd_floor", {1, 3, 7, 9}, {2, 2, 2, 2, 0, 0, true}},
    {"k3s1p1", {2, 17, 6, 5}, {3, 3, 1, 1, 1, 1, true}},
    {"k3s1p1_exclude", {2, 17, 6, 5}, {3, 3, 1, 1, 1, 1, false}},
    {"k3x2_s2x1_p1x0", {2, 4, 8, 7}, {3, 2, 2, 1, 1, 0, false}},
    {"k3s2p1_exclude", {1, 32, 11, 11}, {3, 3, 2, 2, 1, 1, false}},
};

TEST(KernelParity, Pooling) {
  for (const PoolCase& c : kPoolCases)
    for (Pool kind : {Pool::max, Pool::avg})
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided})
        for (bool gy_other_layout : {false, true}) {
          const std::string what = std::string(c.name) + (kind == Pool::max ? "/max/" : "/avg/") +
                                   layout_name(l) + (gy_other_layout ? "/gy_other_layout" : "");
          const auto& p = c.p;
          const Shape ys{c.x[0], c.x[1], (c.x[2] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1,
                         (c.x[3] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1};
          const Tensor x0 = rnd(c.x), gy0 = rnd(ys);
          const Tensor x = in_layout(x0, l);
          const Layout ol = l == Layout::channels_last ? Layout::channels_last : Layout::nchw;
          Tensor y = out_like(ys, ol), y_ref = empty(ys);
          Tensor ws, ws_ref;
          expect_path(true, what + " fwd", [&] { ws = cpu().pool2d_forward(kind, x, y, p); });
          ws_ref = ref().pool2d_forward(kind, x0, y_ref, p);
          expect_close(y, y_ref, what + " fwd");
          if (kind == Pool::max) {
            ASSERT_TRUE(ws.defined()) << what;
            EXPECT_EQ(ws.dtype(), DType::u8) << what << ": expected the oneDNN workspace";
          }
          const Layout gl =
              gy_other_layout ? (ol == Layout::nchw ? Layout::channels_last : Layout::nchw) : ol;
          const Tensor gy = in_layout(gy0, gl);
          Tensor gx = out_like(c.x, ol), gx_ref = empty(c.x);
          expect_path(true, what + " bwd", [&] { cpu().pool2d_backward(kind, gy, ws, gx, p); });
          ref().pool2d_backward(kind, gy0, ws_ref, gx_ref, p);
          expect_close(gx, gx_ref, what + " bwd");
        }
}

// Ops level: conv(+bias) -> relu -> batch norm -> max pool -> sum(y * r), gradients on oneDNN vs
// the forced reference. Both pipelines round to f32 after every op, so differences compound over
// five ops and the backward: compared at 1e-3 relative with a 1e-4 floor of each tensor's scale.
TEST(KernelParity, OpsLevelResidualBlock) {
  for (bool cl : {false, true}) {
    const Tensor x0 = rnd({2, 3, 12, 12}), w0 = rnd({8, 3, 3, 3}), b0 = rnd(Shape{8}), g0 = rnd(Shape{8});
    const Tensor r = rnd({2, 8, 6, 6});
    auto run = [&](bool force_ref) {
      backend::ForceReferenceGuard guard(force_ref);
      Tensor x = (cl ? x0.contiguous(MemoryFormat::channels_last) : x0.clone()).set_requires_grad(true);
      Tensor w = w0.clone().set_requires_grad(true), b = b0.clone().set_requires_grad(true);
      Tensor g = g0.clone().set_requires_grad(true);
      Tensor y = relu(conv2d(x, w, b, {.stride = {1, 1}, .padding = {1, 1}}));
      y = batch_norm(y, Tensor(), Tensor(), g, Tensor(), true, 0.1, 1e-5);
      y = max_pool2d(y, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
      EXPECT_EQ(y.is_channels_last() && !y.is_contiguous(), cl);
      Tensor loss = sum(mul(y, r));
      loss.backward();
      return std::vector<Tensor>{loss.detach(), x.grad(), w.grad(), b.grad(), g.grad()};
    };
    const auto got = run(false), want = run(true);
    const char* names[] = {"loss", "x.grad", "w.grad", "b.grad", "gamma.grad"};
    for (size_t i = 0; i < got.size(); ++i)
      expect_close(got[i], want[i], std::string(cl ? "channels_last " : "nchw ") + names[i], 1e-3, 1e-4);
  }
}

}  // namespace
}  // namespace resin::test
