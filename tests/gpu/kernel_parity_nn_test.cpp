// CudaBackend vs RefBackend: convolution, batch/layer norm, pooling and matmul, in f32 and f64,
// NCHW, channels-last and non-contiguous layouts (on the GPU side; the reference gets contiguous
// copies of the same values).
#include "gpu_util.h"

namespace resin::test {
namespace {

using backend::Conv2dParams;
using backend::Pool;
using backend::Pool2dParams;

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, o, kh, kw;
  Conv2dParams p;
};

const ConvCase kConvCases[] = {
    {"odd_channels_3x3", 2, 3, 9, 9, 5, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
    {"groups3_stride2", 1, 6, 11, 7, 9, 3, 3, {2, 2, 1, 1, 1, 1, 3}},
    {"depthwise", 2, 8, 10, 10, 8, 3, 3, {1, 1, 1, 1, 1, 1, 8}},
    {"dilation2", 2, 5, 12, 12, 7, 3, 3, {1, 1, 2, 2, 2, 2, 1}},
    {"k7_pad3_stride2_stem", 2, 3, 33, 33, 16, 7, 7, {2, 2, 3, 3, 1, 1, 1}},
    {"1x1_stride2", 2, 16, 8, 8, 32, 1, 1, {2, 2, 0, 0, 1, 1, 1}},
    {"asymmetric", 2, 5, 9, 13, 6, 3, 2, {2, 1, 0, 1, 1, 2, 1}},
    {"resnet_64x56", 4, 64, 28, 28, 64, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
};

Shape conv_out(const ConvCase& c) {
  const auto& p = c.p;
  return {c.n, c.o, (c.h + 2 * p.pad_h - p.dilation_h * (c.kh - 1) - 1) / p.stride_h + 1,
          (c.w + 2 * p.pad_w - p.dilation_w * (c.kw - 1) - 1) / p.stride_w + 1};
}

TEST(CudaKernelParity, ConvForwardBackward) {
  RESIN_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (const ConvCase& c : kConvCases)
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided})
        for (bool bias : {true, false}) {
          const std::string what =
              str_cat(c.name, "/", layout_name(l), bias ? "/bias/" : "/", dtype_label(dt));
          const Shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c / c.p.groups, c.kh, c.kw}, ys = conv_out(c);
          const Tensor x0 = rnd_as(xs, dt), w0 = rnd_as(ws, dt), gy0 = rnd_as(ys, dt);
          const Tensor b0 = bias ? rnd_as(Shape{c.o}, dt) : Tensor();
          const Tensor x = on_gpu(x0, l), gy = on_gpu(gy0, l), w = on_gpu(w0, l == Layout::strided ? l : Layout::nchw);
          const Tensor b = bias ? on_gpu(b0) : Tensor();
          const Layout ol = l == Layout::channels_last ? Layout::channels_last : Layout::nchw;

          Tensor y = gpu_out(ys, ol, dt), y_ref = empty(ys, {.dtype = dt});
          gpu().conv2d_forward(x, w, b, y, c.p);
          ref().conv2d_forward(x0, w0, b0, y_ref, c.p);
          expect_near_ref(y, y_ref, what + " fwd");

          Tensor gx = gpu_out(xs, ol, dt), gx_ref = empty(xs, {.dtype = dt});
          gpu().conv2d_backward_data(gy, w, gx, c.p);
          ref().conv2d_backward_data(gy0, w0, gx_ref, c.p);
          expect_near_ref(gx, gx_ref, what + " bwd_data");

          Tensor gw = gpu_out(ws, Layout::nchw, dt), gw_ref = empty(ws, {.dtype = dt});
          Tensor gb = bias ? gpu_out(Shape{c.o}, Layout::nchw, dt) : Tensor();
          Tensor gb_ref = bias ? empty(Shape{c.o}, {.dtype = dt}) : Tensor();
          gpu().conv2d_backward_weights(x, gy, gw, gb, c.p);
          ref().conv2d_backward_weights(x0, gy0, gw_ref, gb_ref, c.p);
          expect_near_ref(gw, gw_ref, what + " bwd_weights");
          if (bias) expect_near_ref(gb, gb_ref, what + " bwd_bias");
        }
}

// The second call with the same geometry reuses the cached algorithm choice.
TEST(CudaKernelParity, ConvAlgorithmCacheHitOnRepeat) {
  RESIN_REQUIRE_GPU();
  const Conv2dParams p{1, 1, 0, 0, 1, 1, 1};
  const Tensor x = on_gpu(rnd({1, 3, 5, 13})), w = on_gpu(rnd({2, 3, 1, 1}));
  Tensor y = gpu_out({1, 2, 5, 13}, Layout::nchw);
  const auto s0 = backend::CudaBackend::conv_cache_stats();
  gpu().conv2d_forward(x, w, Tensor(), y, p);
  const auto s1 = backend::CudaBackend::conv_cache_stats();
  gpu().conv2d_forward(x, w, Tensor(), y, p);
  const auto s2 = backend::CudaBackend::conv_cache_stats();
  EXPECT_EQ(s1.misses, s0.misses + 1);
  EXPECT_EQ(s2.misses, s1.misses);
  EXPECT_EQ(s2.hits, s1.hits + 1);
}

// A view at an odd offset is not 16-byte aligned; the algorithm the heuristics rank first (and that
// the aligned call cached) may refuse it (the emulated cuDNN's ALGO_1 does, like vectorised kernels):
// the call still runs, with another algorithm. Both passes that read the misaligned view are checked.
TEST(CudaKernelParity, ConvOnAMisalignedViewRunsAnotherAlgorithm) {
  RESIN_REQUIRE_GPU();
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Shape xs{2, 3, 6, 5}, ws{4, 3, 3, 3}, ys{2, 4, 6, 5};
  const int64_t n = xs.numel();
  const Tensor flat0 = rnd({n + 1}), w0 = rnd(ws), gy0 = rnd(ys);
  const Tensor flat = on_gpu(flat0), w = on_gpu(w0), gy = on_gpu(gy0);
  for (int64_t offset : {0, 1}) {  // aligned first, so that its choice is cached
    const std::string what = str_cat("offset ", offset);
    const Tensor x = flat.narrow(0, offset, n).view(xs),
                 x0 = flat0.narrow(0, offset, n).contiguous().view(xs);
    Tensor y = gpu_out(ys, Layout::nchw), y_ref = empty(ys);
    gpu().conv2d_forward(x, w, Tensor(), y, p);
    ref().conv2d_forward(x0, w0, Tensor(), y_ref, p);
    expect_near_ref(y, y_ref, what + " fwd");
    Tensor gw = gpu_out(ws, Layout::nchw), gw_ref = empty(ws);
    gpu().conv2d_backward_weights(x, gy, gw, Tensor(), p);
    ref().conv2d_backward_weights(x0, gy0, gw_ref, Tensor(), p);
    expect_near_ref(gw, gw_ref, what + " bwd_weights");
  }
}

// A cached choice whose workspace no longer fits is dropped and another algorithm found (the
// emulated cuDNN's ALGO_1 of backward data needs a workspace, ALGO_0 none). Emulated GPU only: it
// fills the device's memory, and a real cuDNN may have no algorithm without a workspace.
TEST(CudaKernelParity, ConvWithoutMemoryForTheCachedWorkspaceFindsAnother) {
  RESIN_REQUIRE_GPU();
  if (!backend::cuda::emulated_gpu()) GTEST_SKIP() << "fills the GPU's memory";
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Shape xs{1, 256, 4, 4}, ws{512, 256, 3, 3}, ys{1, 512, 4, 4};  // ALGO_1's workspace: 4.5 MiB
  const Tensor w0 = rnd(ws), gy0 = rnd(ys);
  const Tensor w = on_gpu(w0), gy = on_gpu(gy0);
  Tensor gx_ref = empty(xs);
  ref().conv2d_backward_data(gy0, w0, gx_ref, p);
  Tensor gx = gpu_out(xs, Layout::nchw);
  gpu().conv2d_backward_data(gy, w, gx, p);  // caches the choice
  expect_near_ref(gx, gx_ref, "with memory");
  Tensor gx2 = gpu_out(xs, Layout::nchw);
  cuda::empty_cache();
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaSetDevice(gpu_device().index), cudaSuccess);  // cudaMemGetInfo reports the current one
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  // Leaves 1 to 3 MiB (the allocator hands out multiples of 2 MiB at this size).
  const int64_t mib2 = int64_t{2} << 20;
  const Tensor filler = empty({(static_cast<int64_t>(free_bytes) - (int64_t{1} << 20)) / mib2 * mib2},
                              {.dtype = DType::u8, .device = gpu_device()});
  gpu().conv2d_backward_data(gy, w, gx2, p);
  expect_near_ref(gx2, gx_ref, "without memory for the cached workspace");
}

TEST(CudaKernelParity, BatchNorm) {
  RESIN_REQUIRE_GPU();
  const Shape shapes[] = {{2, 5, 7, 3}, {4, 17, 1, 1}, {3, 32, 6, 5}, {8, 64, 14, 14}};
  for (DType dt : {DType::f32, DType::f64})
    for (const Shape& s : shapes)
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided})
        for (int affine = 0; affine < 3; ++affine) {  // 0: gamma+beta, 1: gamma only, 2: none
          const std::string what = str_cat(s, "/", layout_name(l), "/affine", affine, "/", dtype_label(dt));
          const int64_t C = s[1];
          const double eps = 1e-5;
          const Tensor x0 = add(mul(rnd_as(s, dt), 3.0), 0.5), gy0 = rnd_as(s, dt);
          const Tensor g0 = affine < 2 ? rnd_as(Shape{C}, dt) : Tensor(), b0 = affine == 0 ? rnd_as(Shape{C}, dt) : Tensor();
          const Tensor x = on_gpu(x0, l), gy = on_gpu(gy0, l);
          const Tensor g = g0.defined() ? on_gpu(g0) : Tensor(), b = b0.defined() ? on_gpu(b0) : Tensor();
          const Layout ol = l == Layout::strided ? Layout::nchw : l;
          const TensorOptions ro{.dtype = dt};

          Tensor y = gpu_out(s, ol, dt), m = gpu_out(Shape{C}, Layout::nchw, dt), v = gpu_out(Shape{C}, Layout::nchw, dt);
          Tensor y_ref = empty(s, ro), m_ref = empty(Shape{C}, ro), v_ref = empty(Shape{C}, ro);
          gpu().batch_norm_forward_training(x, g, b, y, m, v, eps);
          ref().batch_norm_forward_training(x0, g0, b0, y_ref, m_ref, v_ref, eps);
          expect_near_ref(y, y_ref, what + " train y");
          expect_near_ref(m, m_ref, what + " mean");
          expect_near_ref(v, v_ref, what + " var (biased)");

          const Tensor mg = on_gpu(m_ref), vg = on_gpu(v_ref);
          Tensor yi = gpu_out(s, ol, dt), yi_ref = empty(s, ro);
          gpu().batch_norm_forward_inference(x, g, b, mg, vg, yi, eps);
          ref().batch_norm_forward_inference(x0, g0, b0, m_ref, v_ref, yi_ref, eps);
          expect_near_ref(yi, yi_ref, what + " infer y");

          for (int outs = 0; outs < 3; ++outs) {  // 0: all grads, 1: gx only, 2: params only
            const std::string w2 = what + " bwd" + std::to_string(outs);
            Tensor gx = outs < 2 ? gpu_out(s, ol, dt) : Tensor(), gx_ref = outs < 2 ? empty(s, ro) : Tensor();
            Tensor gg = outs != 1 ? gpu_out(Shape{C}, Layout::nchw, dt) : Tensor();
            Tensor gb = outs != 1 ? gpu_out(Shape{C}, Layout::nchw, dt) : Tensor();
            Tensor gg_ref = outs != 1 ? empty(Shape{C}, ro) : Tensor(), gb_ref = outs != 1 ? empty(Shape{C}, ro) : Tensor();
            gpu().batch_norm_backward(x, gy, mg, vg, g, gx, gg, gb, eps);
            ref().batch_norm_backward(x0, gy0, m_ref, v_ref, g0, gx_ref, gg_ref, gb_ref, eps);
            if (gx.defined()) expect_near_ref(gx, gx_ref, w2 + " gx");
            if (gg.defined()) expect_near_ref(gg, gg_ref, w2 + " ggamma");
            if (gb.defined()) expect_near_ref(gb, gb_ref, w2 + " gbeta");
          }
        }
}

TEST(CudaKernelParity, LayerNorm) {
  RESIN_REQUIRE_GPU();
  const Shape shapes[] = {{7, 13}, {1, 5}, {33, 300}, {4, 1024}};
  for (DType dt : {DType::f32, DType::f64})
    for (const Shape& s : shapes)
      for (int affine = 0; affine < 3; ++affine) {
        const std::string what = str_cat(s, "/affine", affine, "/", dtype_label(dt));
        const int64_t M = s[0], N = s[1];
        const TensorOptions ro{.dtype = dt};
        const Tensor x0 = add(mul(rnd_as(s, dt), 2.0), -1.0), gy0 = rnd_as(s, dt);
        const Tensor g0 = affine < 2 ? rnd_as(Shape{N}, dt) : Tensor(), b0 = affine == 0 ? rnd_as(Shape{N}, dt) : Tensor();
        const Tensor x = on_gpu(x0), gy = on_gpu(gy0), g = g0.defined() ? on_gpu(g0) : Tensor(),
                     b = b0.defined() ? on_gpu(b0) : Tensor();
        Tensor y = gpu_out(s, Layout::nchw, dt), m = gpu_out(Shape{M}, Layout::nchw, dt), r = gpu_out(Shape{M}, Layout::nchw, dt);
        Tensor y_ref = empty(s, ro), m_ref = empty(Shape{M}, ro), r_ref = empty(Shape{M}, ro);
        gpu().layer_norm_forward(x, g, b, y, m, r, 1e-5);
        ref().layer_norm_forward(x0, g0, b0, y_ref, m_ref, r_ref, 1e-5);
        expect_near_ref(y, y_ref, what + " y");
        expect_near_ref(m, m_ref, what + " mean");
        expect_near_ref(r, r_ref, what + " rstd");
        Tensor gx = gpu_out(s, Layout::nchw, dt), gg = gpu_out(Shape{N}, Layout::nchw, dt), gb = gpu_out(Shape{N}, Layout::nchw, dt);
        Tensor gx_ref = empty(s, ro), gg_ref = empty(Shape{N}, ro), gb_ref = empty(Shape{N}, ro);
        gpu().layer_norm_backward(x, gy, on_gpu(m_ref), on_gpu(r_ref), g, gx, gg, gb);
        ref().layer_norm_backward(x0, gy0, m_ref, r_ref, g0, gx_ref, gg_ref, gb_ref);
        expect_near_ref(gx, gx_ref, what + " gx");
        expect_near_ref(gg, gg_ref, what + " ggamma");
        expect_near_ref(gb, gb_ref, what + " gbeta");
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
    {"k3s1p1_exclude", {2, 17, 6, 5}, {3, 3, 1, 1, 1, 1, false}},
    {"k3x2_s2x1_p1x0", {2, 4, 8, 7}, {3, 2, 2, 1, 1, 0, false}},
    {"global_7x7", {3, 32, 7, 7}, {7, 7, 7, 7, 0, 0, true}},
};

// Pooling kernels reproduce the reference's arithmetic and order, so results are compared exactly.
TEST(CudaKernelParity, PoolingIsExact) {
  RESIN_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (const PoolCase& c : kPoolCases)
      for (Pool kind : {Pool::max, Pool::avg})
        for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
          const std::string what = str_cat(c.name, kind == Pool::max ? "/max/" : "/avg/", layout_name(l), "/",
                                           dtype_label(dt));
          const auto& p = c.p;
          const Shape ys{c.x[0], c.x[1], (c.x[2] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1,
                         (c.x[3] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1};
          const Tensor x0 = rnd_as(c.x, dt), gy0 = rnd_as(ys, dt);
          const Tensor x = on_gpu(x0, l), gy = on_gpu(gy0, l);
          const Layout ol = l == Layout::channels_last ? Layout::channels_last : Layout::nchw;
          Tensor y = gpu_out(ys, ol, dt), y_ref = empty(ys, {.dtype = dt});
          const Tensor ws = gpu().pool2d_forward(kind, x, y, p);
          const Tensor ws_ref = ref().pool2d_forward(kind, x0, y_ref, p);
          EXPECT_EQ(y.to_vector(), y_ref.to_vector()) << what << " fwd";
          if (kind == Pool::max) {
            EXPECT_EQ(ws.to_vector(), ws_ref.to_vector()) << what << " argmax";
          }
          Tensor gx = gpu_out(c.x, ol, dt), gx_ref = empty(c.x, {.dtype = dt});
          gpu().pool2d_backward(kind, gy, ws, gx, p);
          ref().pool2d_backward(kind, gy0, ws_ref, gx_ref, p);
          EXPECT_EQ(gx.to_vector(), gx_ref.to_vector()) << what << " bwd";
        }
}

// a [B, M, K] @ b [B, K, N] with transposed operands (strides), a broadcast batch (stride 0), a
// column-major output and a non-BLAS one (every other element: computed in a temporary, then copied).
TEST(CudaKernelParity, Matmul) {
  RESIN_REQUIRE_GPU();
  struct Case {
    int64_t B, M, K, N;
  };
  const Case cases[] = {{1, 1, 1, 1}, {1, 7, 5, 3}, {3, 17, 33, 9}, {2, 64, 128, 256}, {4, 1, 8, 1}, {2, 5, 1, 4}};
  for (DType dt : {DType::f32, DType::f64})
    for (const Case& c : cases)
      for (int variant = 0; variant < 6; ++variant) {
        const std::string what = str_cat(c.B, "x", c.M, "x", c.K, "x", c.N, "/variant", variant, "/", dtype_label(dt));
        const Tensor a0 = rnd_as({c.B, c.M, c.K}, dt), b0 = rnd_as({c.B, c.K, c.N}, dt);
        Tensor a = on_gpu(a0), b = on_gpu(b0);
        if (variant == 1) a = on_gpu(a0.transpose(1, 2).contiguous()).transpose(1, 2);  // column-major a
        if (variant == 2) b = on_gpu(b0.transpose(1, 2).contiguous()).transpose(1, 2);  // column-major b
        if (variant == 3) b = on_gpu(b0.narrow(0, 0, 1)).expand({c.B, c.K, c.N});      // shared b
        const Tensor b_ref = variant == 3 ? b0.narrow(0, 0, 1).expand({c.B, c.K, c.N}).contiguous() : b0;
        Tensor out = variant == 4 ? gpu_out({c.B, c.N, c.M}, Layout::nchw, dt).transpose(1, 2)  // column-major out
                     : variant == 5 ? gpu_out({c.B, c.M, 2 * c.N}, Layout::nchw, dt).slice(2, 0, 2 * c.N, 2)  // stride 2
                                    : gpu_out({c.B, c.M, c.N}, Layout::nchw, dt);
        Tensor out_ref = empty({c.B, c.M, c.N}, {.dtype = dt});
        gpu().matmul(a, b, out);
        ref().matmul(a0, b_ref, out_ref);
        expect_near_ref(out, out_ref, what);
      }
}

TEST(CudaKernelParity, MatmulEmptyInnerDimGivesZeros) {
  RESIN_REQUIRE_GPU();
  Tensor out = gpu_out({2, 3, 4}, Layout::nchw);
  gpu().matmul(on_gpu(zeros({2, 3, 0})), on_gpu(zeros({2, 0, 4})), out);
  for (double v : out.to_vector()) EXPECT_EQ(v, 0.0);
}

}  // namespace
}  // namespace resin::test
