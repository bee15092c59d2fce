// CudaBackend vs RefBackend: unary (+ backward), binary with broadcasting, where, reductions, copy
// between every pair of dtypes, fill, softmax, concat and the index kernels.
#include <limits>

#include "gpu_util.h"

namespace resin::test {
namespace {

using backend::Binary;
using backend::Reduce;
using backend::Unary;
using backend::UnaryParams;

struct UnaryCase {
  const char* name;
  Unary op;
  UnaryParams p;
  bool positive;  // domain is x > 0
};

const UnaryCase kUnaryCases[] = {
    {"neg", Unary::neg, {}, false},
    {"exp", Unary::exp, {}, false},
    {"log", Unary::log, {}, true},
    {"sqrt", Unary::sqrt, {}, true},
    {"rsqrt", Unary::rsqrt, {}, true},
    {"abs", Unary::abs, {}, false},
    {"relu", Unary::relu, {}, false},
    {"leaky_relu", Unary::leaky_relu, {.alpha = 0.1}, false},
    {"gelu", Unary::gelu, {}, false},
    {"gelu_tanh", Unary::gelu_tanh, {}, false},
    {"sigmoid", Unary::sigmoid, {}, false},
    {"tanh", Unary::tanh, {}, false},
    {"softplus", Unary::softplus, {.alpha = 1, .beta = 20}, false},
    {"softplus_beta2_threshold1", Unary::softplus, {.alpha = 2, .beta = 1}, false},
    {"pow_2.5", Unary::pow, {.alpha = 2.5}, true},
    {"pow_0", Unary::pow, {.alpha = 0}, false},
    {"clamp", Unary::clamp, {.alpha = -0.5, .beta = 0.7}, false},
};

TEST(CudaKernelParityElementwise, UnaryAndBackward) {
  RESIN_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64})
    for (const UnaryCase& c : kUnaryCases)
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
        const std::string what = str_cat(c.name, "/", layout_name(l), "/", dtype_label(dt));
        const Shape s{2, 5, 3, 7};
        Tensor x0 = mul(rnd_as(s, dt), 2.0);
        if (c.positive) x0 = add(abs(x0), 0.1);
        const Tensor gy0 = rnd_as(s, dt);
        Tensor y = gpu_out(s, l, dt), y_ref = empty(s, {.dtype = dt});
        gpu().unary(c.op, on_gpu(x0, l), y, c.p);
        ref().unary(c.op, x0, y_ref, c.p);
        expect_near_ref(y, y_ref, what + " fwd");
        Tensor gx = gpu_out(s, l, dt), gx_ref = empty(s, {.dtype = dt});
        gpu().unary_backward(c.op, on_gpu(x0, l), on_gpu(y_ref, l), on_gpu(gy0, l), gx, c.p);
        ref().unary_backward(c.op, x0, y_ref, gy0, gx_ref, c.p);
        expect_near_ref(gx, gx_ref, what + " bwd");
      }
}

TEST(CudaKernelParityElementwise, BinaryWithBroadcasting) {
  RESIN_REQUIRE_GPU();
  const Shape s{3, 4, 5, 6};
  for (DType dt : {DType::f32, DType::f64})
    for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div, Binary::eq, Binary::gt, Binary::lt})
      for (int variant = 0; variant < 4; ++variant) {
        const std::string what = str_cat("op", static_cast<int>(op), "/variant", variant, "/", dtype_label(dt));
        Tensor a0 = rnd_as(s, dt), b0 = rnd_as(s, dt);
        if (op == Binary::eq) b0 = where(gt(rnd_as(s, dt), 0.0), a0, b0);  // some equal pairs
        Tensor a = on_gpu(a0), b = on_gpu(b0), a_ref = a0, b_ref = b0;
        if (variant == 1) {  // b broadcast along dims 0 and 2 (stride 0)
          b_ref = b0.narrow(0, 0, 1).narrow(2, 0, 1).expand(s);
          b = on_gpu(b0.narrow(0, 0, 1).narrow(2, 0, 1).contiguous()).expand(s);
        } else if (variant == 2) {  // a channels-last, b strided
          a = on_gpu(a0, Layout::channels_last);
          b = on_gpu(b0, Layout::strided);
        } else if (variant == 3) {  // a scalar expanded everywhere
          a_ref = a0.reshape({-1}).narrow(0, 0, 1).reshape({1, 1, 1, 1}).expand(s);
          a = on_gpu(a0.reshape({-1}).narrow(0, 0, 1).reshape({1, 1, 1, 1}).contiguous()).expand(s);
        }
        Tensor out = gpu_out(s, variant == 2 ? Layout::channels_last : Layout::nchw, dt), out_ref = empty(s, {.dtype = dt});
        gpu().binary(op, a, b, out);
        ref().binary(op, a_ref, b_ref, out_ref);
        expect_near_ref(out, out_ref, what);
      }
}

TEST(CudaKernelParityElementwise, Where) {
  RESIN_REQUIRE_GPU();
  const Shape s{4, 3, 5};
  for (DType cond_t : {DType::f32, DType::u8, DType::i64}) {
    const Tensor c0 = gt(rnd(s), 0.0).to(cond_t), a0 = rnd(s), b0 = rnd(s);
    Tensor out = gpu_out(s, Layout::nchw), out_ref = empty(s);
    gpu().where(on_gpu(c0), on_gpu(a0, Layout::strided), on_gpu(b0), out);
    ref().where(c0, a0, b0, out_ref);
    EXPECT_EQ(out.to_vector(), out_ref.to_vector()) << "cond " << cond_t;
  }
}

TEST(CudaKernelParityElementwise, Reduce) {
  RESIN_REQUIRE_GPU();
  struct Case {
    Shape x, out;
  };
  // Every kernel path: thread per output (small reductions or many outputs), block per output,
  // and the two-pass split (a few outputs over millions of elements).
  const Case cases[] = {
      {{4, 6, 5}, {1, 6, 1}},          {{4, 6, 5}, {4, 1, 5}},       {{4, 6, 5}, {1, 1, 1}},
      {{64, 3000}, {64, 1}},           {{3000, 64}, {1, 64}},        {{8192, 16}, {8192, 1}},
      {{1 << 21}, {1}},                {{2, 1 << 19}, {2, 1}},       {{32, 64, 7, 7}, {1, 64, 1, 1}},
  };
  for (DType dt : {DType::f32, DType::f64})
    for (const Case& c : cases)
      for (Reduce op : {Reduce::sum, Reduce::mean, Reduce::max, Reduce::min})
        for (bool strided : {false, true}) {
          const std::string what = str_cat(c.x, "->", c.out, "/op", static_cast<int>(op), strided ? "/strided/" : "/",
                                           dtype_label(dt));
          const Tensor x0 = rnd_as(c.x, dt);
          Tensor out = gpu_out(c.out, Layout::nchw, dt), out_ref = empty(c.out, {.dtype = dt});
          gpu().reduce(op, on_gpu(x0, strided ? Layout::strided : Layout::nchw), out);
          ref().reduce(op, x0, out_ref);
          if (op == Reduce::max || op == Reduce::min) {
            EXPECT_EQ(out.to_vector(), out_ref.to_vector()) << what;
          } else {
            expect_near_ref(out, out_ref, what);
          }
        }
}

TEST(CudaKernelParityElementwise, ReduceMaxPropagatesNaN) {
  RESIN_REQUIRE_GPU();
  Tensor x0 = rnd({3, 100});
  x0.data<float>()[150] = std::nanf("");
  Tensor out = gpu_out({3, 1}, Layout::nchw);
  gpu().reduce(Reduce::max, on_gpu(x0), out);
  const auto v = out.to_vector();
  EXPECT_FALSE(std::isnan(v[0]));
  EXPECT_TRUE(std::isnan(v[1]));
  EXPECT_FALSE(std::isnan(v[2]));
}

// Every dtype pair, across layouts; bf16 and f16 round to nearest even exactly as the host's
// BFloat16 and Float16.
TEST(CudaKernelParityElementwise, CopyConvertsEveryDtypePair) {
  RESIN_REQUIRE_GPU();
  const DType all[] = {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i64, DType::i32, DType::u8};
  const Shape s{3, 4, 5, 2};
  // Values every dtype holds exactly or rounds predictably: integers 0..199 scaled, plus fractions.
  Tensor base = add(mul(rand(s, {}, &gen()), 200.0), 0.0);
  for (DType from : all)
    for (DType to : all) {
      const Tensor src = base.to(from);
      const Tensor want = src.to(to);  // the reference conversion, on the host
      Tensor got = on_gpu(zeros(s, {.dtype = to}), Layout::channels_last);
      gpu().copy(on_gpu(src, Layout::strided), got);
      EXPECT_EQ(got.to_vector(), want.to_vector()) << from << " -> " << to;
    }
  // Out of range and NaN to the integer types: saturated, NaN to 0, as on the host (a plain cast
  // is undefined there, and the GPU's conversion instructions saturate where x86's wrap).
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const Tensor odd =
      from_vector({-1.5, 300.7, nan, 1e10, -1e10, inf, -inf, 1e19, -1e19, -0.9}, {10}, {.dtype = DType::f64});
  for (DType from : {DType::f32, DType::f64, DType::bf16, DType::f16})
    for (DType to : {DType::i64, DType::i32, DType::u8}) {
      const Tensor src = odd.to(from);
      Tensor got = on_gpu(zeros({10}, {.dtype = to}));
      gpu().copy(on_gpu(src), got);
      EXPECT_EQ(got.to(Device::cpu()).values<int64_t>(), src.to(to).values<int64_t>())
          << from << " -> " << to;
    }
}

// The device's f16 conversions bit for bit against the host's Float16: every half value to f32,
// and f32 values across the range, at the midpoints between neighbouring halves (ties to even), next
// to them, through the subnormals and the overflow boundary.
TEST(CudaKernelParityElementwise, F16ConversionsMatchTheHostBitForBit) {
  RESIN_REQUIRE_GPU();
  Tensor halves = empty({65536}, {.dtype = DType::f16});
  auto* hb = static_cast<uint16_t*>(halves.raw_data());
  for (uint32_t b = 0; b < 65536; ++b) hb[b] = static_cast<uint16_t>(b);
  Tensor up = on_gpu(halves), widened = gpu_out({65536}, Layout::nchw);
  gpu().copy(up, widened);
  const std::vector<double> got = widened.to_vector(), want = halves.to(DType::f32).to_vector();
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::isnan(got[i]) && std::isnan(want[i]))) {
      ASSERT_EQ(got[i], want[i]) << "half bits " << i;
    }
  }

  std::vector<double> floats;
  for (uint32_t b = 0; b < 0x7c00; ++b) {
    Float16 lo, hi;
    lo.bits = static_cast<uint16_t>(b);
    hi.bits = static_cast<uint16_t>(b + 1);
    const float a = static_cast<float>(lo), mid = (a + static_cast<float>(hi)) / 2;
    for (float f : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
      floats.push_back(f);
      floats.push_back(-f);
    }
  }
  for (double f : {65520.0, 1e10, std::ldexp(1.0, -25), std::ldexp(1.0, -26), 0.0}) floats.push_back(f);
  const Tensor f32 = from_vector(floats, {static_cast<int64_t>(floats.size())});
  Tensor narrowed = on_gpu(zeros(f32.shape(), {.dtype = DType::f16}));
  gpu().copy(on_gpu(f32), narrowed);
  const Tensor back = narrowed.to(Device::cpu()), host = f32.to(DType::f16);
  const auto* gb = static_cast<const uint16_t*>(back.raw_data());
  const auto* wb = static_cast<const uint16_t*>(host.raw_data());
  for (size_t i = 0; i < floats.size(); ++i) ASSERT_EQ(gb[i], wb[i]) << "float " << floats[i];
}

TEST(CudaKernelParityElementwise, CopyBetweenHostAndDevice) {
  RESIN_REQUIRE_GPU();
  const Tensor x = rnd({5, 6, 7});
  const Tensor up = on_gpu(x, Layout::strided);  // upload into a strided view
  Tensor down = empty({5, 6, 7}, {.dtype = DType::f64});
  gpu().copy(up, down);  // download with conversion
  EXPECT_EQ(down.to_vector(), x.to_vector());
}

TEST(CudaKernelParityElementwise, Fill) {
  RESIN_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i64, DType::i32, DType::u8})
    for (Layout l : {Layout::nchw, Layout::strided}) {
      Tensor t = on_gpu(zeros({3, 4, 5}, {.dtype = dt}), l);
      gpu().fill(t, 3.25);
      const Tensor want = full({3, 4, 5}, 3.25, {.dtype = dt});
      EXPECT_EQ(t.to_vector(), want.to_vector()) << dt << "/" << layout_name(l);
    }
}

TEST(CudaKernelParityElementwise, Softmax) {
  RESIN_REQUIRE_GPU();
  const Shape s{4, 7, 3, 5};
  for (DType dt : {DType::f32, DType::f64})
    for (bool log : {false, true})
      for (int64_t dim = 0; dim < 4; ++dim)
        for (bool permuted : {false, true}) {
          const std::string what = str_cat(log ? "log_softmax" : "softmax", "/dim", dim, permuted ? "/permuted/" : "/",
                                            dtype_label(dt));
          const Tensor x0 = mul(rnd_as(s, dt), 3.0), gy0 = rnd_as(s, dt);
          // permuted: dense, but dims stored in the order (2, 0, 3, 1): outer dims do not merge.
          auto place = [&](const Tensor& t) {
            return permuted ? on_gpu(t.permute({2, 0, 3, 1}).contiguous()).permute({1, 3, 0, 2}) : on_gpu(t);
          };
          const Tensor x = place(x0);
          Tensor y = place(zeros(s, {.dtype = dt})), y_ref = empty(s, {.dtype = dt});
          gpu().softmax_forward(x, y, dim, log);
          ref().softmax_forward(x0, y_ref, dim, log);
          expect_near_ref(y, y_ref, what + " fwd");
          Tensor gx = place(zeros(s, {.dtype = dt})), gx_ref = empty(s, {.dtype = dt});
          gpu().softmax_backward(place(y_ref), place(gy0), gx, dim, log);
          ref().softmax_backward(y_ref, gy0, gx_ref, dim, log);
          expect_near_ref(gx, gx_ref, what + " bwd");
        }
}

TEST(CudaKernelParityElementwise, Concat) {
  RESIN_REQUIRE_GPU();
  const Tensor a = rnd({2, 3, 4, 5}), b = rnd({2, 5, 4, 5});
  for (Layout l : {Layout::nchw, Layout::channels_last}) {
    Tensor out = gpu_out({2, 8, 4, 5}, l), out_ref = empty({2, 8, 4, 5});
    gpu().concat({on_gpu(a, l), on_gpu(b, Layout::strided)}, out, 1);
    ref().concat({a, b}, out_ref, 1);
    EXPECT_EQ(out.to_vector(), out_ref.to_vector()) << layout_name(l);
  }
}

TEST(CudaKernelParityElementwise, IndexKernels) {
  RESIN_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::f64}) {
    const Tensor x = rnd_as({6, 9}, dt), idx = from_data<int64_t>({0, 8, 3, 3, 1, 7}, Shape{6});
    Tensor out = gpu_out({6}, Layout::nchw, dt), out_ref = empty({6}, {.dtype = dt});
    gpu().gather_rows(on_gpu(x), on_gpu(idx), out);
    ref().gather_rows(x, idx, out_ref);
    EXPECT_EQ(out.to_vector(), out_ref.to_vector()) << "gather_rows " << dt;

    const Tensor g = rnd_as({6}, dt);
    Tensor gx = on_gpu(zeros({6, 9}, {.dtype = dt})), gx_ref = zeros({6, 9}, {.dtype = dt});
    gpu().scatter_rows_add(on_gpu(g), on_gpu(idx), gx);
    ref().scatter_rows_add(g, idx, gx_ref);
    EXPECT_EQ(gx.to_vector(), gx_ref.to_vector()) << "scatter_rows_add " << dt;

    const Tensor table = rnd_as({5, 4}, dt), rows = from_data<int64_t>({4, 0, 4, 2, 4, 1, 0}, Shape{7});
    Tensor sel = gpu_out({7, 4}, Layout::nchw, dt), sel_ref = empty({7, 4}, {.dtype = dt});
    gpu().index_select(on_gpu(table, Layout::strided), on_gpu(rows), sel);
    ref().index_select(table, rows, sel_ref);
    EXPECT_EQ(sel.to_vector(), sel_ref.to_vector()) << "index_select " << dt;

    const Tensor gs = rnd_as({7, 4}, dt);
    Tensor gt_ = on_gpu(zeros({5, 4}, {.dtype = dt})), gt_ref = zeros({5, 4}, {.dtype = dt});
    gpu().index_add(on_gpu(gs), on_gpu(rows), gt_);
    ref().index_add(gs, rows, gt_ref);
    expect_near_ref(gt_, gt_ref, str_cat("index_add ", dt));  // atomics: order may differ
  }
}

}  // namespace
}  // namespace resin::test
