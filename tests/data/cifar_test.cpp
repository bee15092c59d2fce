#include "resin/data/cifar.h"

#include <gtest/gtest.h>

#include <cstring>

#include "data_test_util.h"

namespace resin::data {
namespace {

using testing::expect_error;
using testing::pattern;
using testing::TempDir;

constexpr size_t kPixels = 3072;

// n records with label bytes from `labels` (label_bytes per record) and patterned pixels.
std::vector<uint8_t> cifar_records(size_t n, int label_bytes, const std::vector<uint8_t>& labels,
                                   uint32_t seed, std::vector<uint8_t>* pixels_out) {
  std::vector<uint8_t> out;
  const auto px = pattern(n * kPixels, seed);
  for (size_t r = 0; r < n; ++r) {
    for (int b = 0; b < label_bytes; ++b) out.push_back(labels[r * static_cast<size_t>(label_bytes) + b]);
    out.insert(out.end(), px.begin() + static_cast<long>(r * kPixels),
               px.begin() + static_cast<long>((r + 1) * kPixels));
  }
  pixels_out->insert(pixels_out->end(), px.begin(), px.end());
  return out;
}

TEST(DataCifar, Cifar10ReadsAllBatchesInOrder) {
  TempDir dir;
  const std::string sub = dir.file("cifar-10-batches-bin");
  std::filesystem::create_directories(sub);
  std::vector<uint8_t> train_px, test_px, train_labels;
  for (int i = 1; i <= 5; ++i) {
    const std::vector<uint8_t> labels = {static_cast<uint8_t>(i), static_cast<uint8_t>(9 - i)};
    train_labels.insert(train_labels.end(), labels.begin(), labels.end());
    testing::write_bytes(sub + "/data_batch_" + std::to_string(i) + ".bin",
                         cifar_records(2, 1, labels, static_cast<uint32_t>(i), &train_px));
  }
  // The test batch gzip-compressed, to check that ".gz" works here too.
  testing::write_gz(sub + "/test_batch.bin.gz", cifar_records(3, 1, {0, 9, 4}, 77, &test_px));

  // Both the folder itself and its parent work as root.
  for (const std::string& root : {sub, dir.str()}) {
    auto train = load_cifar10(root, true);
    ASSERT_EQ(train->size(), 10);
    EXPECT_EQ(train->images().shape(), (Shape{10, 3, 32, 32}));
    EXPECT_EQ(train->images().values<uint8_t>(), train_px);
    const auto l = train->labels().values<int64_t>();
    EXPECT_EQ(l, std::vector<int64_t>(train_labels.begin(), train_labels.end()));
    EXPECT_EQ(train->num_classes(), 10);
    auto test = load_cifar10(root, false);
    ASSERT_EQ(test->size(), 3);
    EXPECT_EQ(test->images().values<uint8_t>(), test_px);
    EXPECT_EQ(test->labels().values<int64_t>(), (std::vector<int64_t>{0, 9, 4}));
  }
  // Channel layout: record bytes 1..1024 are red, i.e. image[0] channel 0 row-major.
  auto test = load_cifar10(sub, false);
  const auto img = test->get(1).image.values<uint8_t>();
  EXPECT_EQ(0, std::memcmp(img.data(), test_px.data() + kPixels, kPixels));
}

TEST(DataCifar, Cifar100FineAndCoarse) {
  TempDir dir;
  std::vector<uint8_t> px, px2;
  // (coarse, fine) pairs.
  testing::write_bytes(dir.file("train.bin"), cifar_records(3, 2, {19, 99, 0, 5, 7, 42}, 3, &px));
  testing::write_bytes(dir.file("test.bin"), cifar_records(1, 2, {2, 3}, 4, &px2));
  auto fine = load_cifar100(dir.str(), true, true);
  auto coarse = load_cifar100(dir.str(), true, false);
  EXPECT_EQ(fine->labels().values<int64_t>(), (std::vector<int64_t>{99, 5, 42}));
  EXPECT_EQ(coarse->labels().values<int64_t>(), (std::vector<int64_t>{19, 0, 7}));
  EXPECT_EQ(fine->num_classes(), 100);
  EXPECT_EQ(coarse->num_classes(), 20);
  EXPECT_EQ(fine->images().values<uint8_t>(), px);
  EXPECT_EQ(load_cifar100(dir.str(), false)->labels().values<int64_t>(), (std::vector<int64_t>{3}));
}

TEST(DataCifar, Errors) {
  TempDir dir;
  expect_error([&] { load_cifar10(dir.str()); }, {"CIFAR-10", "data_batch_1.bin", "test_batch.bin"});
  expect_error([&] { load_cifar100(dir.str() + "/missing", false); }, {"test.bin", "does not exist"});
  std::vector<uint8_t> px;
  for (int i = 1; i <= 2; ++i) {
    testing::write_bytes(dir.file("data_batch_" + std::to_string(i) + ".bin"),
                         cifar_records(1, 1, {1}, 1, &px));
  }
  expect_error([&] { load_cifar10(dir.str()); }, {"missing file", "data_batch_3.bin"});

  // A size that is not a multiple of the record size.
  auto rec = cifar_records(2, 1, {1, 2}, 5, &px);
  rec.pop_back();
  testing::write_bytes(dir.file("test_batch.bin"), rec);
  expect_error([&] { load_cifar10(dir.str(), false); }, {"6145", "not a multiple of the 3073-byte record"});
  // A CIFAR-100 file read as CIFAR-10 (2 label bytes): the size check catches it.
  testing::write_bytes(dir.file("test_batch.bin"), cifar_records(3, 2, {1, 2, 3, 4, 5, 6}, 5, &px));
  expect_error([&] { load_cifar10(dir.str(), false); }, {"not a multiple"});
  // Label out of range.
  testing::write_bytes(dir.file("test_batch.bin"), cifar_records(2, 1, {3, 10}, 5, &px));
  expect_error([&] { load_cifar10(dir.str(), false); }, {"label 10 of record 1", "[0, 10)"});
  testing::write_bytes(dir.file("test.bin"), cifar_records(1, 2, {20, 3}, 5, &px));
  expect_error([&] { load_cifar100(dir.str(), false, false); }, {"label 20", "[0, 20)"});
  EXPECT_EQ(load_cifar100(dir.str(), false, true)->get(0).label, 3);
}

}  // namespace
}  // namespace resin::data
