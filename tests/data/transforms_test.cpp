#include "resin/data/transforms.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "data_test_util.h"

namespace resin::data {
namespace {

using testing::expect_error;

// A batch whose value at (b, c, y, x) is b*1000 + c*100 + y*10 + x, all distinct and decodable.
Tensor coded_batch(int64_t b, int64_t c, int64_t h, int64_t w) {
  Tensor t = empty({b, c, h, w});
  float* p = t.data<float>();
  for (int64_t i = 0; i < b; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) *p++ = static_cast<float>(i * 1000 + ch * 100 + y * 10 + x);
  return t;
}

float at(const Tensor& t, int64_t b, int64_t c, int64_t y, int64_t x) {
  return t.data<float>()[((b * t.size(1) + c) * t.size(2) + y) * t.size(3) + x];
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0;
}

TEST(DataTransforms, ToFloatScales) {
  Tensor u = from_data<uint8_t>({0, 1, 128, 255}, {1, 1, 2, 2});
  Tensor f = to_float(u);
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.shape(), (Shape{1, 1, 2, 2}));
  const auto v = f.values<float>();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[1], 1.0f / 255.0f);
  EXPECT_EQ(v[2], 128.0f / 255.0f);
  EXPECT_EQ(to_float(from_data<uint8_t>({51}, {1})).values<float>()[0], 51.0f / 255.0f);
  EXPECT_EQ(v[3], 1.0f);
  EXPECT_EQ(to_float(u, 1.0f).values<float>(), (std::vector<float>{0, 1, 128, 255}));
  EXPECT_TRUE(to_float(f).is_same(f));
  expect_error([] { to_float(zeros({2}, {.dtype = DType::i64})); }, {"expected u8 or f32"});
}

TEST(DataTransforms, NormalizePerChannel) {
  Generator g(1);
  Tensor x = coded_batch(2, 3, 2, 2);
  const std::vector<float> mean = {1.5f, 100.f, -3.f}, stdv = {2.f, 0.5f, 4.f};
  Tensor y = Normalize(mean, stdv).apply(x.clone(), g);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 4; ++i) {
        const float v = at(x, b, c, i / 2, i % 2);
        EXPECT_EQ(at(y, b, c, i / 2, i % 2), (v - mean[c]) / stdv[c]);
      }
  // One value for all channels; Fashion-MNIST constants on [0, 1] data.
  Tensor ones_batch = full({1, 1, 1, 2}, 1.0);
  Tensor z = Normalize({0.2860f}, {0.3530f}).apply(ones_batch, g);
  EXPECT_NEAR(z.values<float>()[0], (1.0 - 0.2860) / 0.3530, 1e-6);
  expect_error(
      [&] {
        Normalize({0.f, 0.f}, {1.f, 1.f}).apply(coded_batch(1, 3, 1, 1), g);
      },
      {"2 mean/std values", "3 channels"});
  expect_error([] { Normalize({0.f}, {0.f}); }, {"std must be positive"});
  expect_error([] { Normalize({0.f}, {}); }, {"same"});
  expect_error([&] { Normalize({0.f}, {1.f}).apply(zeros({2, 2}), g); }, {"[B, C, H, W]"});
  expect_error(
      [&] {
        Normalize({0.f}, {1.f}).apply(zeros({1, 1, 2, 2}, {.dtype = DType::u8}), g);
      },
      {"to_float"});
}

TEST(DataTransforms, CropWithPaddingOffsets) {
  const int64_t c = 2, h = 4, w = 5, pad = 2;
  Tensor x = coded_batch(1, c, h, w);
  RandomCrop crop(pad, -1.0f);
  for (int64_t top = 0; top <= 2 * pad; ++top) {
    for (int64_t left = 0; left <= 2 * pad; ++left) {
      Tensor out = empty({1, c, h, w});
      crop.apply_params(x.data<float>(), out.data<float>(), c, h, w, {top, left});
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t xx = 0; xx < w; ++xx) {
            const int64_t sy = y + top - pad, sx = xx + left - pad;
            const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
            EXPECT_EQ(at(out, 0, ch, y, xx), inside ? at(x, 0, ch, sy, sx) : -1.0f)
                << top << "," << left << " at " << ch << "," << y << "," << xx;
          }
    }
  }
  // Centre offset (pad, pad) is the identity.
  Tensor id = empty({1, c, h, w});
  crop.apply_params(x.data<float>(), id.data<float>(), c, h, w, {pad, pad});
  EXPECT_TRUE(bitwise_equal(id, x));
  expect_error(
      [&] {
        crop.apply_params(x.data<float>(), id.data<float>(), c, h, w, {2 * pad + 1, 0});
      },
      {"outside the padded image"});
  // Padding wider than the image: rows/columns entirely outside stay fill.
  RandomCrop wide(8);
  Tensor far = empty({1, c, h, w});
  wide.apply_params(x.data<float>(), far.data<float>(), c, h, w, {0, 0});
  for (float v : far.values<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(DataTransforms, RandomCropUsesDocumentedDraws) {
  Tensor x = coded_batch(6, 3, 8, 8);
  RandomCrop crop(4, 0.0f, 6, 7);  // crops to 6x7 from the 16x16 padded image
  Generator g(42), replay(42);
  Tensor y = crop.apply(x, g);
  ASSERT_EQ(y.shape(), (Shape{6, 3, 6, 7}));
  std::vector<int64_t> tops;
  for (int64_t b = 0; b < 6; ++b) {
    const int64_t top = static_cast<int64_t>(replay.below(16 - 6 + 1));
    const int64_t left = static_cast<int64_t>(replay.below(16 - 7 + 1));
    tops.push_back(top);
    for (int64_t ch = 0; ch < 3; ++ch)
      for (int64_t yy = 0; yy < 6; ++yy)
        for (int64_t xx = 0; xx < 7; ++xx) {
          const int64_t sy = yy + top - 4, sx = xx + left - 4;
          const float expect = (sy >= 0 && sy < 8 && sx >= 0 && sx < 8) ? at(x, b, ch, sy, sx) : 0.0f;
          ASSERT_EQ(at(y, b, ch, yy, xx), expect);
        }
  }
  EXPECT_GT(std::set<int64_t>(tops.begin(), tops.end()).size(), 1u);  // offsets vary per sample
  EXPECT_EQ(g.next_u64(), replay.next_u64());                         // consumed exactly two draws per sample
  expect_error([&] { RandomCrop(0, 0.f, 9, 8).apply(coded_batch(1, 1, 8, 8), g); },
               {"larger than the padded image"});
}

TEST(DataTransforms, HorizontalFlip) {
  Tensor x = coded_batch(1, 2, 3, 4);
  Tensor f = x.clone();
  RandomHorizontalFlip::apply_params(f.data<float>(), 2, 3, 4, true);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t xx = 0; xx < 4; ++xx) EXPECT_EQ(at(f, 0, c, y, xx), at(x, 0, c, y, 3 - xx));
  Tensor n = x.clone();
  RandomHorizontalFlip::apply_params(n.data<float>(), 2, 3, 4, false);
  EXPECT_TRUE(bitwise_equal(n, x));

  // p = 1 flips all, p = 0 none; p = 0.5 flips according to the replayed draws.
  Generator g(3);
  Tensor b = coded_batch(64, 1, 2, 3);
  Tensor all = RandomHorizontalFlip(1.0).apply(b.clone(), g);
  Tensor none = RandomHorizontalFlip(0.0).apply(b.clone(), g);
  EXPECT_TRUE(bitwise_equal(none, b));
  Generator g1(9), replay(9);
  Tensor half = RandomHorizontalFlip(0.5).apply(b.clone(), g1);
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    const bool flip = replay.uniform() < 0.5;
    flipped += flip;
    EXPECT_EQ(at(all, i, 0, 1, 0), at(b, i, 0, 1, 2));
    EXPECT_EQ(at(half, i, 0, 1, 0), flip ? at(b, i, 0, 1, 2) : at(b, i, 0, 1, 0)) << i;
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
  expect_error([] { RandomHorizontalFlip(1.5); }, {"[0, 1]"});
}

TEST(DataTransforms, RandomErasingRegionWithinBoundsAndScale) {
  const int64_t h = 28, w = 28;
  RandomErasing erase(1.0, 0.02, 0.33, 0.3, 3.3, -7.0f);
  Generator g(5);
  int erased = 0;
  for (int t = 0; t < 2000; ++t) {
    const auto p = erase.sample(g, h, w);
    if (!p.erase) continue;
    ++erased;
    ASSERT_GE(p.top, 0);
    ASSERT_GE(p.left, 0);
    ASSERT_GE(p.h, 1);
    ASSERT_GE(p.w, 1);
    ASSERT_LT(p.h, h);
    ASSERT_LT(p.w, w);
    ASSERT_LE(p.top + p.h, h);
    ASSERT_LE(p.left + p.w, w);
    // Area within the scale range up to rounding each side by <= 0.5:
    // |h*w - t| <= 0.5 * (sqrt(t*a) + sqrt(t/a)) + 0.25, largest at the ends of the ratio range.
    const auto slack = [](double t) {
      return 0.5 *
                 std::max(std::sqrt(t * 3.3) + std::sqrt(t / 3.3), std::sqrt(t * 0.3) + std::sqrt(t / 0.3)) +
             0.25;
    };
    const double t_lo = 0.02 * h * w, t_hi = 0.33 * h * w;
    ASSERT_GE(static_cast<double>(p.h * p.w), t_lo - slack(t_lo));
    ASSERT_LE(static_cast<double>(p.h * p.w), t_hi + slack(t_hi));
  }
  EXPECT_GT(erased, 1900);  // with p = 1 nearly every draw finds a rectangle on 28x28

  // The region is set to value in every channel; everything else untouched.
  Tensor x = coded_batch(1, 3, 6, 5);
  Tensor y = x.clone();
  RandomErasing::Params p{true, 1, 2, 3, 2};
  erase.apply_params(y.data<float>(), 3, 6, 5, p);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t yy = 0; yy < 6; ++yy)
      for (int64_t xx = 0; xx < 5; ++xx) {
        const bool in = yy >= 1 && yy < 4 && xx >= 2 && xx < 4;
        EXPECT_EQ(at(y, 0, c, yy, xx), in ? -7.0f : at(x, 0, c, yy, xx));
      }
  expect_error([&] { erase.apply_params(y.data<float>(), 3, 6, 5, {true, 4, 0, 3, 1}); }, {"outside"});

  // p = 0 never erases; apply() matches a replay of sample()+apply_params().
  Tensor b = coded_batch(16, 2, 10, 10);
  Generator g0(1);
  EXPECT_TRUE(bitwise_equal(RandomErasing(0.0).apply(b.clone(), g0), b));
  Generator g2(11), replay(11);
  RandomErasing half(0.5);
  Tensor out = half.apply(b.clone(), g2);
  Tensor expect = b.clone();
  for (int64_t i = 0; i < 16; ++i)
    half.apply_params(expect.data<float>() + i * 200, 2, 10, 10, half.sample(replay, 10, 10));
  EXPECT_TRUE(bitwise_equal(out, expect));
  EXPECT_FALSE(bitwise_equal(out, b));
  expect_error([] { RandomErasing(0.5, 0.5, 0.1); }, {"scale"});
  expect_error([] { RandomErasing(0.5, 0.02, 0.33, 0.0, 1.0); }, {"ratio"});
}

TEST(DataTransforms, ComposeIsDeterministic) {
  auto pipeline = std::make_shared<Compose>(std::vector<TransformPtr>{
      std::make_shared<RandomCrop>(2), std::make_shared<RandomHorizontalFlip>(),
      std::make_shared<Normalize>(std::vector<float>{0.5f}, std::vector<float>{0.25f}),
      std::make_shared<RandomErasing>()});
  EXPECT_EQ(pipeline->name(), "Compose(RandomCrop, RandomHorizontalFlip, Normalize, RandomErasing)");
  Tensor x = to_float(from_data<uint8_t>(testing::pattern(8 * 3 * 12 * 12, 4), {8, 3, 12, 12}));
  Generator a(123), b(123), c(124);
  Tensor ya = pipeline->apply(x.clone(), a);
  Tensor yb = pipeline->apply(x.clone(), b);
  Tensor yc = pipeline->apply(x.clone(), c);
  EXPECT_TRUE(bitwise_equal(ya, yb));
  EXPECT_FALSE(bitwise_equal(ya, yc));
}

}  // namespace
}  // namespace resin::data
