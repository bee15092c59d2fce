#include "resin/data/idx.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "data_test_util.h"
#include "resin/data/io.h"

namespace resin::data {
namespace {

using testing::expect_error;
using testing::idx_bytes;
using testing::pattern;
using testing::TempDir;

constexpr uint32_t kImg = 0x00000803, kLab = 0x00000801;

struct IdxCase {
  std::vector<uint8_t> pixels, labels;
  uint32_t n, rows, cols;
};

IdxCase make_case(uint32_t n, uint32_t rows, uint32_t cols, uint32_t seed) {
  return {pattern(size_t{n} * rows * cols, seed), pattern(n, seed + 1, 10), n, rows, cols};
}

// Writes {split}-{images-idx3,labels-idx1}-ubyte (optionally .gz) into dir.
void write_split(const TempDir& dir, const std::string& split, const IdxCase& c, bool gz) {
  const auto img = idx_bytes(kImg, {c.n, c.rows, c.cols}, c.pixels);
  const auto lab = idx_bytes(kLab, {c.n}, c.labels);
  const std::string ip = dir.file(split + "-images-idx3-ubyte"), lp = dir.file(split + "-labels-idx1-ubyte");
  if (gz) {
    testing::write_gz(ip + ".gz", img);
    testing::write_gz(lp + ".gz", lab);
  } else {
    testing::write_bytes(ip, img);
    testing::write_bytes(lp, lab);
  }
}

void expect_matches(const TensorDataset& ds, const IdxCase& c) {
  ASSERT_EQ(ds.size(), c.n);
  ASSERT_EQ(ds.images().shape(), (Shape{c.n, 1, c.rows, c.cols}));
  EXPECT_EQ(ds.images().dtype(), DType::u8);
  EXPECT_EQ(ds.num_classes(), 10);
  EXPECT_EQ(ds.images().values<uint8_t>(), c.pixels);
  for (uint32_t i = 0; i < c.n; ++i) {
    Example e = ds.get(i);
    EXPECT_EQ(e.label, c.labels[i]);
    ASSERT_EQ(e.image.shape(), (Shape{1, c.rows, c.cols}));
    const auto px = e.image.values<uint8_t>();
    ASSERT_EQ(0, std::memcmp(px.data(), c.pixels.data() + size_t{i} * c.rows * c.cols, px.size())) << i;
  }
}

TEST(DataIdx, ReadsGzipAndRawExactly) {
  for (bool gz : {true, false}) {
    TempDir dir;
    const IdxCase train = make_case(7, 5, 4, 1), test = make_case(3, 5, 4, 9);
    write_split(dir, "train", train, gz);
    write_split(dir, "t10k", test, gz);
    expect_matches(*load_mnist(dir.str(), true), train);
    expect_matches(*load_mnist(dir.str(), false), test);
    expect_matches(*load_fashion_mnist(dir.str(), true), train);
  }
}

TEST(DataIdx, PrefersGzipWhenBothExist) {
  TempDir dir;
  const IdxCase a = make_case(4, 3, 3, 5), b = make_case(4, 3, 3, 6);
  write_split(dir, "train", a, true);
  write_split(dir, "train", b, false);
  expect_matches(*load_mnist(dir.str(), true), a);
}

TEST(DataIdx, ConcatenatedGzipMembersAreJoined) {
  TempDir dir;
  const auto bytes = idx_bytes(kLab, {6}, {1, 2, 3, 4, 5, 6});
  testing::write_gz(dir.file("a.gz"), {bytes.begin(), bytes.begin() + 5});
  testing::write_gz(dir.file("b.gz"), {bytes.begin() + 5, bytes.end()});
  auto joined = testing::read_bytes(dir.file("a.gz"));
  const auto second = testing::read_bytes(dir.file("b.gz"));
  joined.insert(joined.end(), second.begin(), second.end());
  testing::write_bytes(dir.file("l.gz"), joined);
  EXPECT_EQ(read_idx_labels(dir.file("l.gz")).values<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(DataIdx, EmptyDatasetIsAllowed) {
  TempDir dir;
  testing::write_bytes(dir.file("i"), idx_bytes(kImg, {0, 28, 28}, {}));
  testing::write_bytes(dir.file("l"), idx_bytes(kLab, {0}, {}));
  EXPECT_EQ(load_idx_dataset(dir.file("i"), dir.file("l"), 10)->size(), 0);
}

TEST(DataIdx, MissingFilesNameTheFilesAndThePackage) {
  TempDir dir;
  expect_error([&] { load_fashion_mnist(dir.str(), true); },
               {"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "dataset-fashion-mnist"});
  expect_error([&] { load_mnist(dir.str() + "/nope", false); }, {"t10k-images-idx3-ubyte", "does not exist"});
  // Images present, labels missing: the labels file is named.
  write_split(dir, "train", make_case(2, 2, 2, 1), true);
  std::filesystem::remove(dir.file("train-labels-idx1-ubyte.gz"));
  expect_error([&] { load_mnist(dir.str(), true); }, {"missing file", "train-labels-idx1-ubyte"});
  if (!dir_exists(kFashionMnistRoot)) {
    expect_error(
        [] { load_fashion_mnist(); },
        {"install Debian package dataset-fashion-mnist: sudo apt-get install dataset-fashion-mnist"});
  }
}

TEST(DataIdx, TruncatedAndCorruptGzip) {
  TempDir dir;
  const auto payload = pattern(4 * 10 * 10, 3);
  testing::write_gz(dir.file("good.gz"), idx_bytes(kImg, {4, 10, 10}, payload));
  const auto gz = testing::read_bytes(dir.file("good.gz"));
  ASSERT_GT(gz.size(), 40u);
  EXPECT_EQ(read_idx_images(dir.file("good.gz")).values<uint8_t>(), payload);

  // Cut in the middle of the deflate data, and cut off only the 8-byte trailer.
  for (size_t keep : {gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
    testing::write_bytes(dir.file("cut.gz"), {gz.begin(), gz.begin() + static_cast<long>(keep)});
    expect_error([&] { read_idx_images(dir.file("cut.gz")); }, {"truncated gzip", "cut.gz"});
  }
  // A wrong CRC-32 in the trailer.
  auto bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 0xff;
  testing::write_bytes(dir.file("crc.gz"), bad_crc);
  expect_error([&] { read_idx_images(dir.file("crc.gz")); }, {"corrupt gzip", "crc.gz"});
  // Garbage after a complete member.
  auto trailing = gz;
  trailing.push_back(0x42);
  trailing.push_back(0x43);
  testing::write_bytes(dir.file("trail.gz"), trailing);
  expect_error([&] { read_idx_images(dir.file("trail.gz")); }, {"trailing garbage"});
  // A bad block type in the deflate stream (bits 1-2 of the first byte after the 10-byte header).
  auto bad_block = gz;
  bad_block[10] |= 0x06;
  testing::write_bytes(dir.file("block.gz"), bad_block);
  expect_error([&] { read_idx_images(dir.file("block.gz")); }, {"corrupt gzip", "block.gz"});
  // A ".gz" file that is not gzip at all.
  testing::write_bytes(dir.file("plain.gz"), idx_bytes(kImg, {4, 10, 10}, payload));
  expect_error([&] { read_idx_images(dir.file("plain.gz")); }, {"gzip magic"});
}

TEST(DataIdx, BadMagicNumbers) {
  TempDir dir;
  testing::write_bytes(dir.file("labels"), idx_bytes(kLab, {3}, {1, 2, 3}));
  testing::write_bytes(dir.file("images"), idx_bytes(kImg, {1, 2, 2}, {1, 2, 3, 4}));
  expect_error([&] { read_idx_images(dir.file("labels")); }, {"bad magic number 0x00000801", "swapped"});
  expect_error([&] { read_idx_labels(dir.file("images")); }, {"bad magic number 0x00000803", "swapped"});
  testing::write_bytes(dir.file("floats"), idx_bytes(0x00000d03, {1, 1, 1}, {0, 0, 0, 0}));
  expect_error([&] { read_idx_images(dir.file("floats")); }, {"0x00000d03", "unsigned-byte"});
  testing::write_bytes(dir.file("junk"), {'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
  expect_error([&] { read_idx_images(dir.file("junk")); }, {"bad magic", "not an IDX file"});
  testing::write_bytes(dir.file("tiny"), {0, 0});
  expect_error([&] { read_idx_images(dir.file("tiny")); }, {"too short"});
  testing::write_bytes(dir.file("hdr"), {0, 0, 8, 3, 0, 0, 0, 1, 0, 0});
  expect_error([&] { read_idx_images(dir.file("hdr")); }, {"truncated", "header"});
}

TEST(DataIdx, DimsMustMatchFileSize) {
  TempDir dir;
  testing::write_bytes(dir.file("short"), idx_bytes(kImg, {3, 4, 4}, pattern(47, 1)));
  expect_error([&] { read_idx_images(dir.file("short")); }, {"need 48 data bytes", "has 47", "truncated"});
  testing::write_bytes(dir.file("long"), idx_bytes(kImg, {3, 4, 4}, pattern(49, 1)));
  expect_error([&] { read_idx_images(dir.file("long")); }, {"need 48", "trailing bytes"});
  testing::write_bytes(dir.file("huge"),
                       idx_bytes(kImg, {0xffffffffu, 0xffffffffu, 0xffffffffu}, pattern(16, 1)));
  expect_error([&] { read_idx_images(dir.file("huge")); }, {"overflow"});
  // Found by fuzz_idx (fuzz/regressions/idx/): zero images hide the overflow from the size check, but
  // the tensor [0, 1, rows, cols] would still need strides rows*cols (UB in contiguous_strides).
  testing::write_bytes(dir.file("empty_huge"), idx_bytes(kImg, {0, 0xffffffffu, 0xffffff00u}, {}));
  expect_error([&] { read_idx_images(dir.file("empty_huge")); }, {"overflow"});
  // Large but not overflowing: must be rejected by the size check, not allocated.
  testing::write_bytes(dir.file("big"), idx_bytes(kImg, {0xffffffffu, 0xffffu, 2}, pattern(16, 1)));
  expect_error([&] { read_idx_images(dir.file("big")); }, {"truncated file"});
  testing::write_bytes(dir.file("zero"), idx_bytes(kImg, {2, 0, 4}, {}));
  expect_error([&] { read_idx_images(dir.file("zero")); }, {"dimension 1 is 0"});
}

TEST(DataIdx, CountMismatchAndLabelRange) {
  TempDir dir;
  testing::write_bytes(dir.file("i"), idx_bytes(kImg, {3, 2, 2}, pattern(12, 1)));
  testing::write_bytes(dir.file("l4"), idx_bytes(kLab, {4}, {0, 1, 2, 3}));
  expect_error([&] { load_idx_dataset(dir.file("i"), dir.file("l4"), 10); },
               {"3 images", "4 labels", "do not belong together"});
  testing::write_bytes(dir.file("l3"), idx_bytes(kLab, {3}, {0, 10, 2}));
  expect_error([&] { load_idx_dataset(dir.file("i"), dir.file("l3"), 10); },
               {"label 10 of example 1", "out of range [0, 10)"});
  EXPECT_EQ(read_idx_labels(dir.file("l3")).values<int64_t>(), (std::vector<int64_t>{0, 10, 2}));
}

TEST(DataIdx, DatasetGetChecksRange) {
  TempDir dir;
  testing::write_bytes(dir.file("i"), idx_bytes(kImg, {2, 2, 2}, pattern(8, 1)));
  testing::write_bytes(dir.file("l"), idx_bytes(kLab, {2}, {0, 1}));
  auto ds = load_idx_dataset(dir.file("i"), dir.file("l"), 10);
  expect_error([&] { ds->get(2); }, {"out of range"});
  expect_error([&] { ds->get(-1); }, {"out of range"});
}

// The real data set, when the Debian package dataset-fashion-mnist is installed.
TEST(DataIdx, RealFashionMnist) {
  if (!dir_exists(kFashionMnistRoot)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto train = load_fashion_mnist();
  auto test = load_fashion_mnist(kFashionMnistRoot, false);
  ASSERT_EQ(train->size(), 60000);
  ASSERT_EQ(test->size(), 10000);
  EXPECT_EQ(train->images().shape(), (Shape{60000, 1, 28, 28}));
  EXPECT_EQ(test->images().shape(), (Shape{10000, 1, 28, 28}));
  for (const auto& ds : {train, test}) {
    std::vector<int64_t> per_class(10, 0);
    const int64_t* l = ds->labels().data<int64_t>();
    for (int64_t i = 0; i < ds->size(); ++i) {
      ASSERT_TRUE(l[i] >= 0 && l[i] < 10) << i;
      ++per_class[static_cast<size_t>(l[i])];
    }
    for (auto c : per_class) EXPECT_EQ(c, ds->size() / 10);
  }
  // The documented normalisation constants are the training set's pixel statistics.
  const uint8_t* px = train->images().data<uint8_t>();
  double s = 0, s2 = 0;
  const int64_t n = train->images().numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = px[i] / 255.0;
    s += v;
    s2 += v * v;
  }
  const double mean = s / static_cast<double>(n);
  EXPECT_NEAR(mean, kFashionMnistMean, 5e-4);
  EXPECT_NEAR(std::sqrt(s2 / static_cast<double>(n) - mean * mean), kFashionMnistStd, 5e-4);
}

}  // namespace
}  // namespace resin::data
