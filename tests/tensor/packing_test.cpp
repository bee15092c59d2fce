// Packed storages (tensor/packing.h): the packed byte order, unpacking on any strided read (also
// through another view of the storage), and which tensors may be packed.
#include "resin/tensor/packing.h"

#include <gtest/gtest.h>

#include <thread>

#include "resin/resin.h"

namespace resin {
namespace {

Tensor numbered(const Shape& s, bool channels_last) {
  Tensor t = channels_last ? empty_strided(s, channels_last_strides(s)) : empty(s);
  // Element (n, c, h, w) holds a distinct value, written through the strides.
  float* p = t.data<float>();
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w)
          p[n * t.stride(0) + c * t.stride(1) + h * t.stride(2) + w * t.stride(3)] =
              static_cast<float>(((n * s[1] + c) * s[2] + h) * s[3] + w);
  return t;
}

TEST(Packing, PackedBytesAreNChw16cAndAnyStridedReadUnpacks) {
  const Shape s{2, 32, 3, 5};
  for (bool cl : {false, true}) {
    const Tensor t = numbered(s, cl);
    const std::vector<float> want = t.values<float>();
    ASSERT_TRUE(can_pack(t));
    EXPECT_EQ(packed_data(t), nullptr);
    const int64_t packs = pack_count(), unpacks = unpack_count();
    pack(t);
    EXPECT_EQ(pack_count(), packs + 1);
    const float* p = packed_data(t);
    ASSERT_NE(p, nullptr);
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 32; ++c)
        for (int64_t h = 0; h < 3; ++h)
          for (int64_t w = 0; w < 5; ++w)
            ASSERT_EQ(p[((n * 2 + c / 16) * 3 + h) * 5 * 16 + w * 16 + c % 16],
                      ((n * 32 + c) * 3 + h) * 5 + w)
                << "channels_last " << cl << " at " << n << "," << c << "," << h << "," << w;
    EXPECT_EQ(unpack_count(), unpacks);  // packed_data does not unpack
    EXPECT_EQ(t.values<float>(), want);  // a strided read unpacks
    EXPECT_EQ(unpack_count(), unpacks + 1);
    EXPECT_EQ(packed_data(t), nullptr);
    EXPECT_EQ(t.values<float>(), want);
    EXPECT_EQ(unpack_count(), unpacks + 1);
  }
}

TEST(Packing, AnotherViewOfAPackedStorageReadsItsValues) {
  const Tensor t = numbered({1, 16, 2, 3}, true);
  const std::vector<float> want = t.values<float>();
  pack(t);
  const Tensor flat = t.permute({0, 2, 3, 1}).reshape({6, 16});  // a view of the same storage
  EXPECT_EQ(packed_data(flat), nullptr);
  const std::vector<float> got = flat.values<float>();
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t c = 0; c < 16; ++c)
      EXPECT_EQ(got[static_cast<size_t>(p * 16 + c)], want[static_cast<size_t>(c * 6 + p)]) << p << "," << c;
}

// Threads that read one packed storage at once (the reference backend's parallel loops do) unpack it
// once and all read the strided values (before the storage's lock, some read a block another thread
// had just swapped out: wrong values, and a data race under TSan).
TEST(Packing, ThreadsReadingAPackedStorageAtOnceUnpackItOnce) {
  const Tensor t = numbered({4, 64, 16, 16}, true);
  const std::vector<float> want = t.values<float>();
  double want_sum = 0;
  for (float v : want) want_sum += v;
  for (int round = 0; round < 4; ++round) {
    pack(t);
    const int64_t unpacks = unpack_count();
    std::vector<double> sums(8, 0.0);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < sums.size(); ++i)
      threads.emplace_back([&, i] {
        const float* p = t.data<float>();
        for (int64_t j = 0; j < t.numel(); ++j) sums[i] += p[j];
      });
    for (auto& th : threads) th.join();
    EXPECT_EQ(unpack_count(), unpacks + 1);
    for (double s : sums) EXPECT_EQ(s, want_sum) << "round " << round;
  }
}

TEST(Packing, OnlyWholeStoragesOfDenseF32ActivationsPack) {
  EXPECT_TRUE(can_pack(empty({2, 16, 3, 3})));
  EXPECT_FALSE(can_pack(empty({2, 24, 3, 3})));                         // C not a multiple of 16
  EXPECT_FALSE(can_pack(empty({2, 16, 9})));                            // not 4-D
  EXPECT_FALSE(can_pack(empty({2, 16, 3, 3}, {.dtype = DType::f64})));  // not f32
  EXPECT_FALSE(can_pack(empty({4, 16, 3, 3}).narrow(0, 1, 2)));         // a part of its storage
  EXPECT_FALSE(can_pack(empty({2, 16, 3, 3}).permute({0, 1, 3, 2})));   // neither NCHW nor NHWC
  EXPECT_FALSE(can_pack(empty({2, 0, 3, 3})));
  EXPECT_THROW(mark_packed(empty({2, 24, 3, 3})), Error);
  EXPECT_THROW(pack(empty({4, 16, 3, 3}).narrow(0, 1, 2)), Error);
}

}  // namespace
}  // namespace resin
