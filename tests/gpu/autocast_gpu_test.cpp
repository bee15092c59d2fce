// bf16 and f16 autocast on the CUDA backend (core/autocast.h): convolution (all three passes) and
// matmul against the f64 reference on the same rounded inputs, and ResNet-20 training under each
// compute type (f16 with dynamic loss scaling) against f32 training.
//
// Error model. The backend rounds inputs (activations, weights, incoming gradients) to the compute
// type, as the host's BFloat16/Float16 do; products of two rounded values are exact in f32; cuDNN
// and cuBLAS accumulate in f32; convolution outputs are rounded to the compute type once more
// (cuDNN writes them in it) before the conversion to f32. So against the f64 result on the rounded
// inputs, element by element,
//   |got - want| <= (u_out + 2 K 2^-24) * A,   A = sum_k |x_k| |w_k|
// with u_out = 2^-8 (bf16) or 2^-11 (f16) for convolutions and 0 for matmuls (f32 output). The
// check doubles it for matmuls (accumulation order of tensor-core kernels) and allows 8 times it for
// convolutions: cuDNN may choose a Winograd or FFT algorithm, whose transforms round intermediate
// values too. A bias is added in f32 after the conversion back (|b| joins A). A second check against
// the f32 result on unrounded inputs proves the rounding happened.
#include "gpu_util.h"
#include "resin/core/autocast.h"
#include "resin/models/zoo.h"
#include "resin/optim/optim.h"

namespace resin::test {
namespace {

using backend::Conv2dParams;

// t's values rounded to ct, as f32 (host conversion: the reference).
Tensor rounded(const Tensor& t, DType ct) { return t.to(ct).to(DType::f32); }

double unit(DType ct) { return ct == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11); }

void expect_autocast_result(const Tensor& got, const Tensor& want, const Tensor& a, const Tensor& f32_result,
                            double u_out, int64_t k, double slack, const std::string& what) {
  const std::vector<double> g = got.to_vector(), w = want.to_vector(), av = a.to_vector(),
                            f = f32_result.to_vector();
  const double tol = slack * (u_out + 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24));
  size_t bad = 0;
  double max_a = 0, max_diff = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!(std::abs(g[i] - w[i]) <= tol * av[i] + 1e-30)) ++bad;
    max_a = std::max(max_a, av[i]);
    max_diff = std::max(max_diff, std::abs(g[i] - f[i]));
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << g.size() << " elements beyond the bound";
  EXPECT_GT(max_diff, 1e-5 * max_a) << what << ": no rounding visible against f32 (autocast did nothing?)";
}

constexpr double kConvSlack = 8.0;

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, o, kh, kw;
  Conv2dParams p;
};
const ConvCase kCases[] = {
    {"3x3", 4, 16, 12, 12, 32, 3, 3, {.pad_h = 1, .pad_w = 1}},
    {"3x3/s2/groups",
     2,
     16,
     9,
     9,
     16,
     3,
     3,
     {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 4}},
    {"1x1", 3, 32, 7, 7, 64, 1, 1, {}},
};

Shape out_shape(const ConvCase& c) {
  return {c.n, c.o, (c.h + 2 * c.p.pad_h - c.kh) / c.p.stride_h + 1,
          (c.w + 2 * c.p.pad_w - c.kw) / c.p.stride_w + 1};
}

TEST(CudaAutocast, ConvolutionPassesComputeInTheAutocastType) {
  RESIN_REQUIRE_GPU();
  for (DType ct : {DType::bf16, DType::f16})
    for (const ConvCase& c : kCases)
      for (Layout l : {Layout::nchw, Layout::channels_last}) {
        const std::string what = str_cat(c.name, "/", layout_name(l), "/", ct);
        const Shape xs{c.n, c.c, c.h, c.w}, ws{c.o, c.c / c.p.groups, c.kh, c.kw}, ys = out_shape(c);
        const Tensor x0 = rnd(xs), w0 = rnd(ws), gy0 = rnd(ys);
        const Tensor x = on_gpu(x0, l), w = on_gpu(w0), gy = on_gpu(gy0, l);
        const Tensor xr = rounded(x0, ct).to(DType::f64), wr = rounded(w0, ct).to(DType::f64);
        const Tensor gyr = rounded(gy0, ct).to(DType::f64);
        const Tensor xa = abs(xr), wa = abs(wr), gya = abs(gyr);
        const int64_t k_fwd = c.c / c.p.groups * c.kh * c.kw, k_bd = c.o / c.p.groups * c.kh * c.kw;
        const int64_t k_bw = ys[0] * ys[2] * ys[3];

        const Tensor b0 = rnd(Shape{c.o}), b = on_gpu(b0);
        Tensor y = gpu_out(ys, l), y32 = gpu_out(ys, l);
        Tensor y_ref = empty(ys, {.dtype = DType::f64}), y_abs = empty(ys, {.dtype = DType::f64});
        gpu().conv2d_forward(x, w, b, y32, c.p);
        {
          AutocastGuard guard(ct);
          gpu().conv2d_forward(x, w, b, y, c.p);
        }
        ref().conv2d_forward(xr, wr, b0.to(DType::f64), y_ref, c.p);
        ref().conv2d_forward(xa, wa, abs(b0.to(DType::f64)), y_abs, c.p);
        expect_autocast_result(y, y_ref, y_abs, y32, unit(ct), k_fwd, kConvSlack, what + " fwd + bias");

        Tensor gx = gpu_out(xs, l), gx32 = gpu_out(xs, l);
        Tensor gx_ref = empty(xs, {.dtype = DType::f64}), gx_abs = empty(xs, {.dtype = DType::f64});
        gpu().conv2d_backward_data(gy, w, gx32, c.p);
        {
          AutocastGuard guard(ct);
          gpu().conv2d_backward_data(gy, w, gx, c.p);
        }
        ref().conv2d_backward_data(gyr, wr, gx_ref, c.p);
        ref().conv2d_backward_data(gya, wa, gx_abs, c.p);
        expect_autocast_result(gx, gx_ref, gx_abs, gx32, unit(ct), k_bd, kConvSlack, what + " bwd_data");

        Tensor gw = gpu_out(ws, Layout::nchw), gw32 = gpu_out(ws, Layout::nchw);
        Tensor gb = gpu_out(Shape{c.o}, Layout::nchw), gb32 = gpu_out(Shape{c.o}, Layout::nchw);
        Tensor gw_ref = empty(ws, {.dtype = DType::f64}), gw_abs = empty(ws, {.dtype = DType::f64});
        gpu().conv2d_backward_weights(x, gy, gw32, gb32, c.p);
        {
          AutocastGuard guard(ct);
          gpu().conv2d_backward_weights(x, gy, gw, gb, c.p);
        }
        ref().conv2d_backward_weights(xr, gyr, gw_ref, Tensor(), c.p);
        ref().conv2d_backward_weights(xa, gya, gw_abs, Tensor(), c.p);
        expect_autocast_result(gw, gw_ref, gw_abs, gw32, unit(ct), k_bw, kConvSlack, what + " bwd_weights");
        // The bias gradient sums the f32 gradient itself: no rounding.
        expect_near_ref(gb, gb32, what + " bwd_bias");
      }
}

TEST(CudaAutocast, MatmulComputesInTheAutocastTypeWithF32Output) {
  RESIN_REQUIRE_GPU();
  struct Case {
    int64_t B, M, K, N;
  };
  for (DType ct : {DType::bf16, DType::f16})
    for (const Case& c : {Case{1, 7, 33, 5}, Case{3, 64, 128, 32}})
      for (bool transposed : {false, true}) {
        const std::string what = str_cat(c.B, "x", c.M, "x", c.K, "x", c.N, transposed ? "/aT/" : "/", ct);
        const Tensor a0 = rnd({c.B, c.M, c.K}), b0 = rnd({c.B, c.K, c.N});
        const Tensor a = transposed ? on_gpu(a0.transpose(1, 2).contiguous()).transpose(1, 2) : on_gpu(a0);
        const Tensor b = on_gpu(b0);
        Tensor out = gpu_out({c.B, c.M, c.N}, Layout::nchw), out32 = gpu_out({c.B, c.M, c.N}, Layout::nchw);
        gpu().matmul(a, b, out32);
        {
          AutocastGuard guard(ct);
          gpu().matmul(a, b, out);
        }
        const Tensor ar = rounded(a0, ct).to(DType::f64), br = rounded(b0, ct).to(DType::f64);
        Tensor want = empty({c.B, c.M, c.N}, {.dtype = DType::f64}),
               a_abs = empty({c.B, c.M, c.N}, {.dtype = DType::f64});
        ref().matmul(ar, br, want);
        ref().matmul(abs(ar), abs(br), a_abs);
        expect_autocast_result(out, want, a_abs, out32, 0.0, c.K, 2.0, what);
      }
}

// ResNet-20 on the synthetic 10-class task of train_parity_test, 150 steps from the same weights:
// f32, bf16 autocast, and f16 autocast with a dynamic loss scaler. Mixed precision changes rounding,
// not what is learnt: tail loss and held-out accuracy stay near f32's, and f16 overflows rarely.
TEST(CudaAutocast, Resnet20TrainsInBf16AndF16LikeInF32) {
  RESIN_REQUIRE_GPU();
  RESIN_SKIP_ON_EMULATED_GPU("3 x 150 ResNet-20 steps (the autocast kernel tests run there)");
  const Device d = gpu_device();
  Generator g(5);
  const Tensor protos = randn({10, 1, 28, 28}, {}, &g);
  auto batch = [&](Generator& draw, int64_t n) {
    const Tensor y = randint(0, 10, {n}, {.dtype = DType::i64}, &draw);
    std::vector<Tensor> xs;
    for (int64_t i = 0; i < n; ++i) xs.push_back(protos.narrow(0, y.data<int64_t>()[i], 1));
    return std::make_pair(add(concat(xs, 0), mul(randn({n, 1, 28, 28}, {}, &draw), 0.8)), y);
  };
  manual_seed(7);
  auto init = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  struct Run {
    double tail_loss = 0, top1 = 0;
    int64_t overflows = 0;
  };
  auto run = [&](DType ct) {
    auto net = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
    net->load_state_dict(init->state_dict());
    net->to(d);
    auto named = net->named_parameters();
    optim::Sgd opt(optim::weight_decay_param_groups(named, 0.05, 5e-4), {.momentum = 0.9, .nesterov = true});
    std::optional<optim::LossScaler> scaler;
    if (ct == DType::f16) scaler.emplace();
    Generator draw(11);
    std::vector<double> losses;
    net->train();
    for (int step = 0; step < 150; ++step) {
      const auto [x, y] = batch(draw, 32);
      Tensor loss;
      {
        AutocastGuard guard(ct);
        loss = cross_entropy(net->forward(x.to(d)), y.to(d));
      }
      losses.push_back(loss.item());
      (scaler ? scaler->scale(loss) : loss).backward();
      if (!scaler || scaler->unscale(named)) opt.step();
      if (scaler) scaler->update();
      opt.zero_grad();
    }
    Run r;
    for (size_t i = losses.size() - 30; i < losses.size(); ++i) r.tail_loss += losses[i] / 30;
    if (scaler) r.overflows = scaler->overflow_steps();
    NoGradGuard ng;
    net->eval();
    Generator held(99);
    int64_t right = 0;
    for (int b = 0; b < 8; ++b) {
      const auto [x, y] = batch(held, 64);
      Tensor logits;
      {
        AutocastGuard guard(ct);
        logits = net->forward(x.to(d));
      }
      const auto pred = argmax(logits, 1).to_vector(), yv = y.to_vector();
      for (size_t i = 0; i < yv.size(); ++i) right += pred[i] == yv[i];
    }
    r.top1 = 100.0 * static_cast<double>(right) / (8 * 64);
    std::printf("[ resnet20 %s ] tail loss %.4f, held-out top-1 %.2f%%, %lld overflow steps\n",
                dtype_name(ct), r.tail_loss, r.top1, static_cast<long long>(r.overflows));
    return r;
  };
  const Run f32 = run(DType::f32), bf16 = run(DType::bf16), f16 = run(DType::f16);
  ASSERT_GT(f32.top1, 50.0) << "the f32 run did not learn, so the comparison proves nothing";
  for (const auto& [name, r] : {std::pair{"bf16", bf16}, std::pair{"f16", f16}}) {
    EXPECT_NEAR(r.tail_loss, f32.tail_loss, 0.05 + 0.25 * f32.tail_loss) << name;
    EXPECT_NEAR(r.top1, f32.top1, 5.0) << name;
  }
  EXPECT_LE(f16.overflows, 10) << "a dynamic scale settles after a few overflows";
}

}  // namespace
}  // namespace resin::test
