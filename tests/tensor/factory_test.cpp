// Factories, random reproducibility, dtype conversions (bf16 rounding) and printing.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "resin/resin.h"

namespace resin {
namespace {

TEST(TensorFactory, ZerosOnesFull) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_TRUE(z.is_contiguous());
  for (double v : z.to_vector()) EXPECT_EQ(v, 0.0);
  Tensor o = ones({4}, {.dtype = DType::i64});
  EXPECT_EQ(o.dtype(), DType::i64);
  EXPECT_EQ(o.values<int64_t>(), (std::vector<int64_t>{1, 1, 1, 1}));
  Tensor f = full({2, 2}, -2.5, {.dtype = DType::f64, .requires_grad = true});
  EXPECT_TRUE(f.requires_grad());
  EXPECT_TRUE(f.is_leaf());
  for (double v : f.to_vector()) EXPECT_EQ(v, -2.5);
  Tensor s = scalar_tensor(7);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 7.0);
  EXPECT_EQ(zeros_like(f).dtype(), DType::f64);
  EXPECT_FALSE(zeros_like(f).requires_grad());
  EXPECT_EQ(empty({0, 5}).numel(), 0);
}

// Sizes whose byte count wraps 64 bits must be an error, not a small allocation behind a huge view.
TEST(TensorFactory, OverflowingSizesAreErrors) {
  const int64_t big = int64_t{1} << 31;
  try {
    zeros({big, big, 4});  // 2^64 elements: the element count wraps
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
  EXPECT_THROW(zeros({big, big}), Error);                         // 2^62 elements, 2^64 bytes
  EXPECT_THROW(empty_strided({2, 3}, {int64_t{1} << 62, 1}), Error);  // the strided span wraps the bytes
  EXPECT_THROW(empty_strided({2, 3}, {3}), Error);                   // one stride for two dims
  EXPECT_EQ(empty_strided({0, 3}, {int64_t{1} << 62, 1}).numel(), 0);  // empty: nothing to allocate
}

TEST(TensorFactory, Arange) {
  EXPECT_EQ(arange(0, 5).to_vector(), (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1, 2, 0.25, {.dtype = DType::f64}).to_vector(), (std::vector<double>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(5, 0, -2, {.dtype = DType::i64}).values<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(arange(3, 3).numel(), 0);
  EXPECT_THROW(arange(0, 1, 0), Error);
  EXPECT_THROW(arange(0, 5, -1), Error);
}

TEST(TensorFactory, RandomFactoriesAreReproducible) {
  manual_seed(123);
  Tensor a = randn({100});
  Tensor b = rand({100});
  Tensor c = randint(-3, 4, {100});
  manual_seed(123);
  EXPECT_EQ(randn({100}).to_vector(), a.to_vector());
  EXPECT_EQ(rand({100}).to_vector(), b.to_vector());
  EXPECT_EQ(randint(-3, 4, {100}).to_vector(), c.to_vector());
  // A private generator gives the same stream as the default one seeded the same way, and does
  // not disturb the default generator.
  Generator g(123);
  manual_seed(5);
  const auto next_default = randn({3}).to_vector();
  manual_seed(5);
  EXPECT_EQ(randn({100}, {}, &g).to_vector(), a.to_vector());
  EXPECT_EQ(randn({3}).to_vector(), next_default);
  // A different seed gives different values.
  Generator h(124);
  EXPECT_NE(randn({100}, {}, &h).to_vector(), a.to_vector());
}

// Bulk normals (Generator::normals, NormalReader, behind randn and the initialisers) are the values of
// one normal() call each, bit for bit, and leave the generator where those calls would: with and
// without a cached spare, odd counts, across NormalReader's 65536-value chunks.
TEST(TensorFactory, BulkNormalsEqualOneAtATime) {
  auto bits = [](const std::vector<double>& v) {
    std::vector<uint64_t> b;
    for (double x : v) b.push_back(std::bit_cast<uint64_t>(x));
    return b;
  };
  for (const bool spare : {false, true})
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{7}, int64_t{8192}, int64_t{100001}}) {
      Generator one(11), bulk(11);
      if (spare) {
        one.normal();
        bulk.normal();
      }
      std::vector<double> want(static_cast<size_t>(n)), got(static_cast<size_t>(n)),
          read(static_cast<size_t>(n));
      for (double& v : want) v = one.normal();
      bulk.normals(got.data(), n);
      EXPECT_EQ(bits(got), bits(want)) << n << " spare " << spare;
      EXPECT_EQ(bulk.state(), one.state()) << n << " spare " << spare;
      Generator chunked(11);
      if (spare) chunked.normal();
      NormalReader z(chunked, n);
      for (double& v : read) v = z.next();
      EXPECT_EQ(bits(read), bits(want)) << n << " spare " << spare;
      EXPECT_EQ(chunked.state(), one.state()) << n << " spare " << spare;
    }
}

TEST(TensorFactory, GeneratorStateRoundTrips) {
  Generator g(9);
  randn({3}, {}, &g);  // leaves a cached spare normal
  const std::string st = g.state();
  const auto want = randn({5}, {.dtype = DType::f64}, &g).to_vector();
  Generator h(0);
  h.set_state(st);
  EXPECT_EQ(randn({5}, {.dtype = DType::f64}, &h).to_vector(), want);
  EXPECT_THROW(h.set_state("garbage"), Error);
}

// A checkpoint's generator state is untrusted input: anything but a complete, usable state is an
// error, and a rejected state leaves the generator as it was.
TEST(TensorFactory, GeneratorRejectsDamagedStates) {
  Generator g(9);
  randn({3}, {}, &g);
  const std::string st = g.state();
  std::string zeros;
  for (int i = 0; i < 312; ++i) zeros += "0 ";
  const std::vector<std::string> bad = {
      st.substr(0, st.size() / 2),  // truncated in the engine words
      st + " 7",                    // trailing text
      st.substr(0, st.rfind(' ')) + " 0x1.8p+1zz",  // malformed spare normal
      st.substr(0, st.rfind(' ')) + " inf",         // non-finite spare normal
      zeros + "312 0 0x0p+0",       // the all-zero engine: would emit zeros forever
  };
  Generator h(5);
  const std::string before = h.state();
  for (const std::string& s : bad) {
    EXPECT_THROW(h.set_state(s), Error) << s.substr(0, 60);
    EXPECT_EQ(h.state(), before);
  }
}

TEST(TensorFactory, RandomRangesAndMoments) {
  Generator g(7);
  const auto u = rand({20000}, {.dtype = DType::f64}, &g).to_vector();
  double su = 0;
  for (double v : u) {
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
    su += v;
  }
  EXPECT_NEAR(su / 20000, 0.5, 0.01);
  const auto n = randn({20000}, {.dtype = DType::f64}, &g).to_vector();
  double m = 0, m2 = 0;
  for (double v : n) m += v;
  m /= 20000;
  for (double v : n) m2 += (v - m) * (v - m);
  EXPECT_NEAR(m, 0.0, 0.03);
  EXPECT_NEAR(std::sqrt(m2 / 20000), 1.0, 0.03);
  const auto r = randint(2, 5, {3000}, {.dtype = DType::i64}, &g).values<int64_t>();
  std::set<int64_t> seen(r.begin(), r.end());
  EXPECT_EQ(seen, (std::set<int64_t>{2, 3, 4}));
  const auto un = uniform({1000}, -2, -1, {.dtype = DType::f64}, &g).to_vector();
  for (double v : un) {
    EXPECT_GE(v, -2.0);
    EXPECT_LT(v, -1.0);
  }
  EXPECT_THROW(randint(3, 3, {2}), Error);
}

TEST(TensorFactory, UniformNeverReachesItsUpperBoundAfterRounding) {
  // In [0.999999, 1) about 3% of doubles round to 1.0f in f32; in [0.99, 1) most round to 1 in bf16.
  Generator g(11);
  for (double v : uniform({10000}, 0.999999, 1.0, {}, &g).to_vector()) ASSERT_LT(v, 1.0);
  for (double v : uniform({10000}, 0.99, 1.0, {.dtype = DType::bf16}, &g).to_vector()) ASSERT_LT(v, 1.0);
  for (double v : uniform({1000}, -1.0, -0.999, {.dtype = DType::bf16}, &g).to_vector()) ASSERT_LT(v, -0.999);
  for (double v : rand({100000}, {}, &g).to_vector()) ASSERT_LT(v, 1.0);
  EXPECT_EQ(uniform({3}, 2.0, 2.0).to_vector(), (std::vector<double>{2, 2, 2}));
  EXPECT_THROW(uniform({3}, 1.0, 0.0), Error);
}

TEST(TensorFactory, FromVectorAndItem) {
  Tensor t = from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::f64});
  EXPECT_EQ(t.select(1, 2).to_vector(), (std::vector<double>{3, 6}));
  EXPECT_THROW(from_vector({1, 2}, {3}), Error);
  EXPECT_THROW(t.item(), Error);
  Tensor d = from_data<int32_t>({4, 5}, {2});
  EXPECT_EQ(d.dtype(), DType::i32);
  EXPECT_EQ(d.values<int64_t>(), (std::vector<int64_t>{4, 5}));
  EXPECT_THROW(t.data<float>(), Error);
}

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(TensorDtype, BFloat16RoundsToNearestEven) {
  auto bf = [](float f) { return BFloat16(f).bits; };
  EXPECT_EQ(bf(1.0f), 0x3f80);
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: ties go to even.
  EXPECT_EQ(bf(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(bf(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  // Just above a tie rounds up; just below rounds down.
  EXPECT_EQ(bf(bits_to_float(0x3f808001)), 0x3f81);
  EXPECT_EQ(bf(bits_to_float(0x3f807fff)), 0x3f80);
  EXPECT_EQ(bf(-1.0f - 3 * std::ldexp(1.0f, -8)), 0xbf82);
  // Overflow rounds to infinity; infinities and NaN survive.
  EXPECT_EQ(bf(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(bf(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bf(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(bits_to_float(0x7f800001)))));  // signalling NaN
  EXPECT_EQ(static_cast<float>(BFloat16(3.0f)), 3.0f);
}

TEST(TensorDtype, Float16RoundsToNearestEven) {
  auto h = [](float f) { return Float16(f).bits; };
  EXPECT_EQ(h(1.0f), 0x3c00);
  EXPECT_EQ(h(-2.0f), 0xc000);
  EXPECT_EQ(h(65504.0f), 0x7bff);  // the largest finite
  // 1 + 2^-11 lies halfway between 1 (even) and 1 + 2^-10: ties go to even; 1 + 3 * 2^-11 rounds up.
  EXPECT_EQ(h(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(h(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // 65520 is halfway between 65504 and 2^16 (odd mantissa below): rounds to infinity; just below stays.
  EXPECT_EQ(h(65520.0f), 0x7c00);
  EXPECT_EQ(h(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(h(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(h(-std::numeric_limits<float>::infinity()), 0xfc00);
  // Subnormals: 2^-24 is the smallest; 2^-25 is a tie with 0 (even); just above it rounds up.
  EXPECT_EQ(h(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(h(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(h(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(h(3 * std::ldexp(1.0f, -25)), 0x0002);                      // 1.5 units: tie, to even 2
  EXPECT_EQ(h(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);  // rounds up into the smallest normal
  EXPECT_EQ(h(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(static_cast<float>(Float16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(
      std::isnan(static_cast<float>(Float16(bits_to_float(0x7f800001)))));  // signalling NaN stays NaN
  // Every half value converts to float and back unchanged (NaNs: to some NaN).
  for (uint32_t b = 0; b < 0x10000; ++b) {
    Float16 v;
    v.bits = static_cast<uint16_t>(b);
    const float f = static_cast<float>(v);
    if (std::isnan(f)) {
      EXPECT_EQ(b & 0x7c00u, 0x7c00u) << b;
      EXPECT_TRUE(std::isnan(static_cast<float>(Float16(f)))) << b;
    } else {
      ASSERT_EQ(Float16(f).bits, b) << "half bits " << b << " -> " << f;
    }
  }
}

#if defined(__FLT16_MAX__)
// The compiler's _Float16 (IEEE binary16, round to nearest even) as an independent oracle: every
// float whose bits step by a prime stride across the whole range, plus the neighbours of every
// half value and of every midpoint between two.
TEST(TensorDtype, Float16AgreesWithTheCompilersFloat16) {
  auto check = [](float f) {
    if (std::isnan(f)) return;
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    ASSERT_EQ(Float16(f).bits, rb) << "float " << f;
    ASSERT_EQ(static_cast<float>(Float16(f)), static_cast<float>(ref)) << "float " << f;
  };
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 65521) check(bits_to_float(static_cast<uint32_t>(u)));
  for (uint32_t b = 0; b < 0x7c00; ++b) {
    Float16 lo, hi;
    lo.bits = static_cast<uint16_t>(b);
    hi.bits = static_cast<uint16_t>(b + 1);
    const float a = static_cast<float>(lo), mid = (a + static_cast<float>(hi)) / 2;  // exact in float
    for (float f : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
      check(f);
      check(-f);
    }
  }
}
#endif

TEST(TensorDtype, Float16Tensors) {
  const std::vector<double> v = {1.0, 0.1, 70000.0, -3e-8, 65504.0, -0.0};
  const Tensor h = from_vector(v, {6}).to(DType::f16);
  EXPECT_EQ(h.dtype(), DType::f16);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_from_name("float16"), DType::f16);
  EXPECT_STREQ(dtype_name(DType::f16), "f16");
  const std::vector<double> back = h.to(DType::f32).to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(back[i], static_cast<float>(Float16(static_cast<float>(v[i])))) << v[i];
  EXPECT_TRUE(std::isinf(back[2]));
  // Uniform samples stay below the upper bound once rounded to f16 (1 - 2^-12 rounds to 1).
  const Tensor u = rand(Shape{4096}, {.dtype = DType::f16});
  for (double x : u.to_vector()) ASSERT_LT(x, 1.0);
  // f16 tensors are storage-only, like bf16: ops ask for a conversion.
  try {
    (void)relu(h);
    FAIL() << "relu on an f16 tensor should throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("storage-only"), std::string::npos) << e.what();
  }
}

TEST(TensorDtype, Conversions) {
  Tensor f = from_vector({1.5, -2.75, 3.0, 1.0 + 3.0 / 256}, {4});
  Tensor d = f.to(DType::f64);
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_EQ(d.to_vector(), f.to_vector());
  EXPECT_TRUE(f.to(DType::f32).is_same(f));
  Tensor i = f.to(DType::i64);
  EXPECT_EQ(i.values<int64_t>(), (std::vector<int64_t>{1, -2, 3, 1}));  // truncation, as C and torch
  EXPECT_EQ(i.to(DType::f32).to_vector(), (std::vector<double>{1, -2, 3, 1}));
  Tensor b = f.to(DType::bf16);
  EXPECT_EQ(b.dtype(), DType::bf16);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1.5, -2.75, 3.0, 1.0 + 4.0 / 256}));
  EXPECT_EQ(b.to(DType::f32).to_vector(), b.to_vector());
  Tensor u = from_vector({0, 7, 255}, {3}, {.dtype = DType::u8});
  EXPECT_EQ(u.to(DType::f32).to_vector(), (std::vector<double>{0, 7, 255}));
  // Conversions keep the layout of a channels-last tensor.
  Tensor cl = zeros({2, 3, 2, 2}).contiguous(MemoryFormat::channels_last);
  EXPECT_TRUE(cl.to(DType::f64).is_channels_last());
  // Differentiable between floating types; gradients come back in the source dtype.
  Tensor x = from_vector({1, 2}, {2}, {.dtype = DType::f64, .requires_grad = true});
  sum(mul(x.to(DType::f32), 3.0)).backward();
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 3}));
  EXPECT_THROW(x.to(DType::i64), Error);
}

// Out of an integer type's range a float saturates, and NaN becomes 0 (undefined in C++; x86 and
// GPUs disagree), from every floating type and on every backend (the GPU's in kernel parity).
TEST(TensorDtype, FloatToIntegerSaturatesAndNanIsZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<double> v = {-1.5, 300.7, nan, 1e10, -1e10, 2.9, inf, -inf, 1e19, -1e19, 255.0, -0.9};
  for (DType from : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    // f16 and bf16 round the large values first (f16 overflows to inf), which saturate all the same.
    const Tensor x = from_vector(v, {static_cast<int64_t>(v.size())}, {.dtype = DType::f64}).to(from);
    const double r300 = x.to_vector()[1], r2 = x.to_vector()[5];  // 300.7 and 2.9 as `from` holds them
    const int64_t t300 = static_cast<int64_t>(r300), t2 = static_cast<int64_t>(r2);
    EXPECT_EQ(x.to(DType::u8).values<uint8_t>(),
              (std::vector<uint8_t>{0, 255, 0, 255, 0, static_cast<uint8_t>(t2), 255, 0, 255, 0, 255, 0}))
        << from;
    constexpr int32_t i32max = std::numeric_limits<int32_t>::max(),
                      i32min = std::numeric_limits<int32_t>::min();
    EXPECT_EQ(x.to(DType::i32).values<int32_t>(),
              (std::vector<int32_t>{-1, static_cast<int32_t>(t300), 0, i32max, i32min,
                                    static_cast<int32_t>(t2), i32max, i32min, i32max, i32min, 255, 0}))
        << from;
    constexpr int64_t i64max = std::numeric_limits<int64_t>::max(),
                      i64min = std::numeric_limits<int64_t>::min();
    // 1e10 as `from` holds it (bf16 rounds it; f16 has no such value: inf, which saturates).
    const bool holds_1e10 = from != DType::f16;
    const int64_t big = holds_1e10 ? static_cast<int64_t>(x.to_vector()[3]) : i64max;
    const int64_t small = holds_1e10 ? static_cast<int64_t>(x.to_vector()[4]) : i64min;
    EXPECT_EQ(x.to(DType::i64).values<int64_t>(),
              (std::vector<int64_t>{-1, t300, 0, big, small, t2, i64max, i64min, i64max, i64min, 255, 0}))
        << from;
  }
}

// At the edges of the ranges: 2^31 and 2^63 (what the types' maxima round to) saturate; the largest
// floats below them convert exactly; u8 saturates from 255 on and truncates below.
TEST(TensorDtype, FloatToIntegerAtTheRangeEdges) {
  const float below31 = std::nextafter(2147483648.0f, 0.0f),
              below63f = std::nextafter(9223372036854775808.0f, 0.0f);
  const double below63 = std::nextafter(9223372036854775808.0, 0.0);
  constexpr int32_t i32max = std::numeric_limits<int32_t>::max(),
                    i32min = std::numeric_limits<int32_t>::min();
  constexpr int64_t i64max = std::numeric_limits<int64_t>::max(),
                    i64min = std::numeric_limits<int64_t>::min();
  const Tensor f = from_vector({2147483648.0, below31, -2147483648.0, -2147483904.0}, {4});
  EXPECT_EQ(f.to(DType::i32).values<int32_t>(),
            (std::vector<int32_t>{i32max, static_cast<int32_t>(below31), i32min, i32min}));
  const Tensor d = from_vector({2147483647.0, 2147483647.5, -2147483648.5}, {3}, {.dtype = DType::f64});
  EXPECT_EQ(d.to(DType::i32).values<int32_t>(), (std::vector<int32_t>{i32max, i32max, i32min}));
  const Tensor d63 =
      from_vector({9223372036854775808.0, below63, -9223372036854775808.0}, {3}, {.dtype = DType::f64});
  EXPECT_EQ(d63.to(DType::i64).values<int64_t>(),
            (std::vector<int64_t>{i64max, static_cast<int64_t>(below63), i64min}));
  const Tensor f63 = from_vector({9223372036854775808.0, static_cast<double>(below63f)}, {2});
  EXPECT_EQ(f63.to(DType::i64).values<int64_t>(),
            (std::vector<int64_t>{i64max, static_cast<int64_t>(below63f)}));
  const Tensor u = from_vector({255.5, 255.0, 254.99, -0.0, -0.99, 256.0}, {6});
  EXPECT_EQ(u.to(DType::u8).values<uint8_t>(), (std::vector<uint8_t>{255, 255, 254, 0, 0, 255}));
}

TEST(TensorDtype, Names) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i64, DType::i32, DType::u8})
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  EXPECT_EQ(dtype_from_name("float32"), DType::f32);
  EXPECT_THROW(dtype_from_name("f8"), Error);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
}

TEST(TensorPrint, SmallTensorsShowEveryValue) {
  const std::string s = arange(0, 6).reshape({2, 3}).str();
  for (const char* part : {"tensor(", "[[", "5]]", "shape=[2, 3]", "dtype=f32"})
    EXPECT_NE(s.find(part), std::string::npos) << part << " in " << s;
  const std::string i = arange(0, 3, 1, {.dtype = DType::i64}).str();
  EXPECT_NE(i.find("[0, 1, 2]"), std::string::npos) << i;
  Tensor g = ones({2}, {.requires_grad = true});
  g.set_name("weight");
  const std::string gs = g.str();
  EXPECT_NE(gs.find("requires_grad"), std::string::npos) << gs;
  EXPECT_NE(gs.find("name=weight"), std::string::npos) << gs;
  EXPECT_EQ(Tensor().str(), "tensor(undefined)");
  EXPECT_NE(scalar_tensor(2.5).str().find("2.5"), std::string::npos);
  std::ostringstream os;
  os << arange(0, 2);
  EXPECT_EQ(os.str(), arange(0, 2).str());
}

TEST(TensorPrint, LargeTensorsAreSummarised) {
  Tensor big = arange(0, 3000).reshape({3, 10, 100});
  const std::string s = big.str();
  EXPECT_LT(s.size(), 2500u) << "summary should not print 3000 values";
  EXPECT_NE(s.find("..."), std::string::npos);
  EXPECT_NE(s.find("2999]"), std::string::npos) << "the last element is shown";
  EXPECT_EQ(s.find("1550,"), std::string::npos) << "a middle element is elided";
  EXPECT_NE(s.find("shape=[3, 10, 100]"), std::string::npos);
  // A long 1-D tensor keeps its first and last three values.
  const std::string l = arange(0, 2000).str();
  EXPECT_NE(l.find("2, "), std::string::npos) << l;
  EXPECT_NE(l.find("1997,"), std::string::npos) << l;
  EXPECT_EQ(l.find("1000,"), std::string::npos) << l;
  // Non-contiguous tensors print in logical order.
  const std::string t = arange(0, 6).reshape({2, 3}).transpose(0, 1).str();
  EXPECT_NE(t.find("shape=[3, 2]"), std::string::npos);
  EXPECT_LT(t.find(" 3]"), t.find(" 1,")) << t;
}

}  // namespace
}  // namespace resin
