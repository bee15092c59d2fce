// bf16 autocast (core/autocast.h) in the oneDNN backend: convolution (all three passes) and matmul
// against f32, on NCHW and channels-last activations, groups, stride, padding and bias.
//
// Error model. bf16 keeps 8 significant bits (7 stored), so rounding an f32 to bf16 has relative
// error at most u = 2^-8. A product of two rounded factors is off by at most (2u + u^2)|x w|, and
// an output that sums K such products (K = C/g * KH * KW for the forward pass) is off by at most
//   |y_bf16 - y_f32| <= (2u + u^2 + 2 K 2^-24) * A,   A = sum_k |x_k| |w_k|
// where 2 K 2^-24 covers the f32 accumulation of both sides in any order. A is computed exactly
// (in f64, by the reference backend on |x| and |w|), so this bound holds element by element for any
// data: it is a worst case, about sqrt(K) times the typical error of random signs (relative to the
// typical |y| ~ A / sqrt(K) it reads "error ~ sqrt(K) u |y|"). Three checks per case:
//   1. the bf16 kernel ran (CpuBackend::cache_stats().bf16 counts it);
//   2. the result equals, to f32-kernel accuracy (parity_util.h tolerance), the f64 reference on the
//      bf16-ROUNDED inputs: inputs are rounded, nothing else (an output rounded to bf16 fails);
//   3. against the f32 result on the unrounded inputs it stays within the bound above, and differs
//      by more than f32 noise (otherwise nothing was rounded).
#include "resin/core/autocast.h"

#include "parity_util.h"

namespace resin::test {
namespace {

using backend::Conv2dParams;

constexpr double kU = 1.0 / 256;  // 2^-8

double tol_for(int64_t k) { return 2 * kU + kU * kU + 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24); }

// The values of t rounded to bf16 (round to nearest even), as an f32 tensor in t's layout.
Tensor bf16_rounded(const Tensor& t) {
  Tensor h = empty(t.shape(), {.dtype = DType::bf16});
  ref().copy(t, h);
  Tensor out = empty_like(t);
  ref().copy(h, out);
  return out;
}

Tensor f64_abs(const Tensor& t) { return abs(t.to(DType::f64)); }

int64_t bf16_count() { return backend::CpuBackend::cache_stats().bf16; }

bool skip_without_bf16() {
  if (backend::bf16_compute_supported()) return false;
  std::printf("[ SKIPPED-ISA ] oneDNN reports %s: no native bf16, autocast computes in f32\n",
              backend::cpu_isa_name().c_str());
  return true;
}

// Checks 2 and 3 above for one output.
void expect_bf16_result(const Tensor& got, const Tensor& want_rounded, const Tensor& want_f32,
                        const Tensor& a, int64_t k, const std::string& what) {
  expect_close(got, want_rounded, what + " vs f64 on bf16-rounded inputs");
  const std::vector<double> g = got.to_vector(), w = want_f32.to_vector(), av = a.to_vector();
  const double tol = tol_for(k);
  size_t bad = 0;
  double worst = 0, max_a = 0, max_err = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double err = std::abs(g[i] - w[i]);
    if (!(err <= tol * av[i])) ++bad;
    if (av[i] > 0) worst = std::max(worst, err / (tol * av[i]));
    max_a = std::max(max_a, av[i]);
    max_err = std::max(max_err, err);
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << g.size() << " elements beyond the bf16 bound (worst "
                     << worst << " of the allowed)";
  EXPECT_GT(max_err, 1e-5 * max_a) << what << ": no bf16 rounding visible (max error " << max_err << ")";
}

// Channel counts where oneDNN 2.6 has bf16 kernels for every pass (multiples of 16 per group).
const ConvCase kCases[] = {
    {"3x3_pad1_16_to_16", 2, 16, 8, 8, 16, 3, 3, {1, 1, 1, 1, 1, 1, 1}},
    {"3x3_stride2_32_to_64", 2, 32, 9, 9, 64, 3, 3, {2, 2, 1, 1, 1, 1, 1}},
    {"1x1_stride2_16_to_32", 3, 16, 8, 8, 32, 1, 1, {2, 2, 0, 0, 1, 1, 1}},
    {"groups2_3x3_32_to_32", 2, 32, 7, 7, 32, 3, 3, {1, 1, 1, 1, 1, 1, 2}},
    {"5x5_pad2_asym_16_to_48", 2, 16, 11, 9, 48, 5, 5, {1, 1, 2, 2, 1, 1, 1}},
};

TEST(Autocast, GuardNestsAndRejectsOtherTypes) {
  EXPECT_EQ(autocast_dtype(), DType::f32);
  {
    AutocastGuard a(DType::bf16);
    EXPECT_EQ(autocast_dtype(), DType::bf16);
    {
      AutocastGuard b(DType::f32);
      EXPECT_EQ(autocast_dtype(), DType::f32);
    }
    EXPECT_EQ(autocast_dtype(), DType::bf16);
  }
  EXPECT_EQ(autocast_dtype(), DType::f32);
  EXPECT_THROW(AutocastGuard{DType::f64}, resin::Error);  // braces: a temporary, not a declaration
  EXPECT_EQ(autocast_dtype(), DType::f32);
  AutocastGuard f16(DType::f16);  // accepted (the CUDA backend computes in it)
  EXPECT_EQ(autocast_dtype(), DType::f16);
}

// The CPU has no fast f16 kernels in oneDNN 2.6: under f16 autocast, convolutions and matmuls
// compute exactly as without it.
TEST(Autocast, F16OnTheCpuComputesInF32) {
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x = rnd({2, 16, 6, 6}), w = rnd({16, 16, 3, 3}), a = rnd({2, 5, 7}), b = rnd({2, 7, 3});
  Tensor y32 = empty({2, 16, 6, 6}), y = empty({2, 16, 6, 6}), m32 = empty({2, 5, 3}), m = empty({2, 5, 3});
  cpu().conv2d_forward(x, w, Tensor(), y32, p);
  cpu().matmul(a, b, m32);
  const int64_t before = bf16_count();
  {
    AutocastGuard autocast(DType::f16);
    cpu().conv2d_forward(x, w, Tensor(), y, p);
    cpu().matmul(a, b, m);
  }
  EXPECT_EQ(bf16_count(), before);
  EXPECT_EQ(y.to_vector(), y32.to_vector());
  EXPECT_EQ(m.to_vector(), m32.to_vector());
}

TEST(Autocast, ConvolutionPassesComputeInBf16WithinTheBound) {
  if (skip_without_bf16()) GTEST_SKIP();
  for (const ConvCase& c : kCases)
    for (Layout l : {Layout::nchw, Layout::channels_last})
      for (bool bias : {true, false}) {
        const std::string what = std::string(c.name) + "/" + layout_name(l) + (bias ? "/bias" : "");
        const Shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c / c.p.groups, c.kh, c.kw}, ys = conv_out(c);
        const Tensor x0 = rnd(xs), w0 = rnd(ws), b0 = bias ? rnd(Shape{c.o}) : Tensor(), gy0 = rnd(ys);
        const Tensor x = in_layout(x0, l), gy = in_layout(gy0, l);
        const Tensor xr = bf16_rounded(x0), wr = bf16_rounded(w0), gyr = bf16_rounded(gy0);
        // The three references: f64 on the rounded inputs (bias is not rounded: it stays f32), f32
        // kernels on the originals, and f64 on |inputs| (the A of the bound).
        const auto f64 = [](const Tensor& t) { return t.defined() ? t.to(DType::f64) : Tensor(); };
        const auto e64 = [](const Shape& s) { return empty(s, {.dtype = DType::f64}); };
        Tensor y_r = e64(ys), gx_r = e64(xs), gw_r = e64(ws), gb_r = bias ? e64({c.o}) : Tensor();
        ref().conv2d_forward(f64(xr), f64(wr), f64(b0), y_r, c.p);
        ref().conv2d_backward_data(f64(gyr), f64(wr), gx_r, c.p);
        ref().conv2d_backward_weights(f64(xr), f64(gyr), gw_r, gb_r, c.p);
        Tensor y_f = empty(ys), gx_f = empty(xs), gw_f = empty(ws),
               gb_f = bias ? empty(Shape{c.o}) : Tensor();
        cpu().conv2d_forward(x0, w0, b0, y_f, c.p);
        cpu().conv2d_backward(x0, gy0, w0, gx_f, gw_f, gb_f, c.p);
        Tensor y_a = e64(ys), gx_a = e64(xs), gw_a = e64(ws), gb_a = bias ? e64({c.o}) : Tensor();
        ref().conv2d_forward(f64_abs(x0), f64_abs(w0), bias ? f64_abs(b0) : Tensor(), y_a, c.p);
        ref().conv2d_backward_data(f64_abs(gy0), f64_abs(w0), gx_a, c.p);
        ref().conv2d_backward_weights(f64_abs(x0), f64_abs(gy0), gw_a, gb_a, c.p);

        const int64_t k_fwd = c.c / c.p.groups * c.kh * c.kw;
        const int64_t k_bwd_data = c.o / c.p.groups * c.kh * c.kw;
        const int64_t k_bwd_weights = ys[0] * ys[2] * ys[3];

        const Layout ol = l == Layout::channels_last ? Layout::channels_last : Layout::nchw;
        AutocastGuard autocast(DType::bf16);
        int64_t before = bf16_count();
        Tensor y = out_like(ys, ol);
        cpu().conv2d_forward(x, w0, b0, y, c.p);
        EXPECT_EQ(bf16_count(), before + 1) << what << ": forward did not run a bf16 kernel";
        expect_bf16_result(y, y_r, y_f, y_a, k_fwd, what + " fwd");

        // Separate calls, then both gradients in one call (gy converted once).
        for (bool joint : {false, true}) {
          const std::string w2 = what + (joint ? " joint" : "");
          Tensor gx = out_like(xs, ol), gw = out_like(ws, Layout::nchw);
          Tensor gb = bias ? out_like(Shape{c.o}, Layout::nchw) : Tensor();
          before = bf16_count();
          if (joint) {
            cpu().conv2d_backward(x, gy, w0, gx, gw, gb, c.p);
          } else {
            cpu().conv2d_backward_data(gy, w0, gx, c.p);
            cpu().conv2d_backward_weights(x, gy, gw, gb, c.p);
          }
          EXPECT_EQ(bf16_count(), before + 2) << w2 << ": backward did not run two bf16 kernels";
          expect_bf16_result(gx, gx_r, gx_f, gx_a, k_bwd_data, w2 + " bwd_data");
          expect_bf16_result(gw, gw_r, gw_f, gw_a, k_bwd_weights, w2 + " bwd_weights");
          if (bias) {
            // diff_bias sums the bf16 diff_dst: only gy is rounded (K terms of one factor each).
            expect_close(gb, gb_r, w2 + " bwd_bias vs rounded gy");
            const std::vector<double> g = gb.to_vector(), f = gb_f.to_vector(), a = gb_a.to_vector();
            for (size_t i = 0; i < g.size(); ++i)
              EXPECT_LE(std::abs(g[i] - f[i]), tol_for(k_bwd_weights) * a[i]) << w2 << " bwd_bias " << i;
          }
        }
      }
}

TEST(Autocast, MatmulComputesInBf16WithinTheBound) {
  if (skip_without_bf16()) GTEST_SKIP();
  // [B, M, K] @ [B, K, N]: plain, and b read transposed through strides (as linear's weight is).
  const Tensor a0 = rnd({3, 17, 64}), b0 = rnd({3, 64, 24}), bt = rnd({3, 24, 64}).transpose(1, 2);
  for (const Tensor* b : {&b0, &bt}) {
    const std::string what = b == &b0 ? "matmul" : "matmul transposed b";
    Tensor want_r = empty({3, 17, 24}, {.dtype = DType::f64}),
           want_a = empty({3, 17, 24}, {.dtype = DType::f64});
    ref().matmul(bf16_rounded(a0).to(DType::f64), bf16_rounded(b->contiguous()).to(DType::f64), want_r);
    ref().matmul(f64_abs(a0), f64_abs(b->contiguous()), want_a);
    Tensor want_f = empty({3, 17, 24});
    cpu().matmul(a0, *b, want_f);
    AutocastGuard autocast(DType::bf16);
    const int64_t before = bf16_count();
    Tensor out = empty({3, 17, 24});
    cpu().matmul(a0, *b, out);
    EXPECT_EQ(bf16_count(), before + 1) << what;
    expect_bf16_result(out, want_r, want_f, want_a, 64, what);
  }
}

// A pass oneDNN 2.6 has no fast bf16 kernel for (backward-weights of 8 -> 24 channels, 5x5, NCHW)
// keeps its f32 primitive under autocast: no reference fallback, and exactly the f32 result.
TEST(Autocast, PassesWithoutABf16KernelStayF32) {
  if (skip_without_bf16()) GTEST_SKIP();
  const Conv2dParams p{1, 1, 2, 2, 1, 1, 1};
  const Tensor x = rnd({2, 8, 11, 9}), gy = rnd({2, 24, 11, 9});
  Tensor gw_f = empty({24, 8, 5, 5}), gw = empty({24, 8, 5, 5});
  cpu().conv2d_backward_weights(x, gy, gw_f, Tensor(), p);
  AutocastGuard autocast(DType::bf16);
  const int64_t before = bf16_count();
  expect_path(true, "8 -> 24 backward-weights under autocast",
              [&] { cpu().conv2d_backward_weights(x, gy, gw, Tensor(), p); });
  EXPECT_EQ(bf16_count(), before) << "oneDNN now has a bf16 kernel here: pick another configuration";
  EXPECT_EQ(gw.to_vector(), gw_f.to_vector());
}

// Bf16Policy: a pass turned off keeps its f32 primitive (exactly the f32 result), the others stay bf16;
// passes asked for the tensors' own layouts (NHWC here) give the same bf16 results.
TEST(Autocast, PolicySelectsPassesAndLayouts) {
  if (skip_without_bf16()) GTEST_SKIP();
  // The policy is process-wide: restored even if a check below throws, so later tests see the default.
  struct RestorePolicy {
    const backend::Bf16Policy saved = backend::CpuBackend::bf16_policy();
    ~RestorePolicy() { backend::CpuBackend::set_bf16_policy(saved); }
  } restore;
  const backend::Bf16Policy& saved = restore.saved;
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x = in_layout(rnd({2, 16, 6, 6}), Layout::channels_last), w = rnd({16, 16, 3, 3});
  const Tensor gy = in_layout(rnd({2, 16, 6, 6}), Layout::channels_last);
  auto run = [&](const backend::Bf16Policy& pol, Tensor& gx, Tensor& gw) {
    backend::CpuBackend::set_bf16_policy(pol);
    gx = in_layout(zeros({2, 16, 6, 6}), Layout::channels_last);
    gw = empty({16, 16, 3, 3});
    const int64_t before = bf16_count();
    cpu().conv2d_backward(x, gy, w, gx, gw, Tensor(), p);
    return bf16_count() - before;
  };
  Tensor gx32, gw32, gx, gw, gx_user, gw_user;
  run({.fwd = false, .bwd_data = false, .bwd_weights = false}, gx32, gw32);  // f32 (autocast off below)
  AutocastGuard autocast(DType::bf16);
  EXPECT_EQ(run({.bwd_weights = false}, gx, gw), 1);
  EXPECT_EQ(gw.to_vector(), gw32.to_vector()) << "backward-weights turned off should stay f32";
  EXPECT_NE(gx.to_vector(), gx32.to_vector()) << "backward-data should be bf16";
  EXPECT_EQ(
      run({.fwd_blocked = false, .bwd_data_blocked = false, .bwd_weights_blocked = false}, gx_user, gw_user),
      2);
  EXPECT_EQ(run(saved, gx, gw), 2);
  expect_close(gx_user, gx, "bwd_data, own vs blocked layouts");
  expect_close(gw_user, gw, "bwd_weights, own vs blocked layouts");
}

// Autograd: the backward of an op recorded under autocast runs in bf16 wherever backward() is
// called, and an op recorded without it stays f32 even when backward runs inside a guard.
TEST(Autocast, BackwardFollowsTheForwardPassesPrecision) {
  if (skip_without_bf16()) GTEST_SKIP();
  const Tensor x0 = in_layout(rnd({2, 16, 6, 6}), Layout::channels_last);
  const Tensor w0 = rnd({16, 16, 3, 3}), lw0 = rnd({10, 16 * 36}), lb0 = rnd({10});
  auto run = [&](bool autocast_forward, bool guard_backward, std::vector<Tensor>& grads) {
    Tensor x = x0.detach(), w = w0.detach(), lw = lw0.detach(), lb = lb0.detach();
    for (Tensor* t : {&x, &w, &lw, &lb}) t->set_requires_grad(true);
    Tensor loss;
    {
      AutocastGuard g(autocast_forward ? DType::bf16 : DType::f32);
      Tensor h = conv2d(x, w, Tensor(), {.padding = {1, 1}});
      loss = sum(linear(h.reshape({2, -1}), lw, lb));
    }
    const int64_t before = bf16_count();
    {
      AutocastGuard g(guard_backward ? DType::bf16 : DType::f32);
      loss.backward();
    }
    grads = {x.grad(), w.grad(), lw.grad(), lb.grad()};
    return bf16_count() - before;
  };
  std::vector<Tensor> g32, g16, g32_guarded;
  EXPECT_EQ(run(false, false, g32), 0);
  // conv: backward-data + backward-weights; linear: two matmuls.
  EXPECT_EQ(run(true, false, g16), 4);
  EXPECT_EQ(run(false, true, g32_guarded), 0);
  for (size_t i = 0; i < g32.size(); ++i) {
    EXPECT_EQ(g32[i].to_vector(), g32_guarded[i].to_vector()) << "gradient " << i;
    // Loose sanity bound here (the kernel tests above check the element bounds): within 5% of scale.
    expect_close(g16[i], g32[i], "autocast gradient " + std::to_string(i), 0.0, 0.05);
    // The linear bias gradient (i = 3) is a sum of ones: exact in any precision.
    if (i < 3) {
      EXPECT_NE(g16[i].to_vector(), g32[i].to_vector()) << "gradient " << i << " shows no bf16 rounding";
    }
  }
}

}  // namespace
}  // namespace resin::test
