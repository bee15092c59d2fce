// Damaged inputs must give resin::Error (or a valid dataset), never a crash or an out-of-bounds read;
// run under ASan (-DRESIN_SANITIZE=ON) to check the latter.
#include <gtest/gtest.h>

#include "data_test_util.h"
#include "resin/data/cifar.h"
#include "resin/data/idx.h"

namespace resin::data {
namespace {

using testing::TempDir;

// Flips a few bytes and/or truncates; deterministic for a given round.
std::vector<uint8_t> mutate(std::vector<uint8_t> v, Generator& g) {
  const uint64_t kind = g.below(3);
  if (kind != 1 && !v.empty()) {
    const uint64_t flips = 1 + g.below(4);
    for (uint64_t f = 0; f < flips; ++f) {
      // Bias towards the headers, where the interesting fields are.
      const uint64_t limit = g.below(2) ? std::min<uint64_t>(v.size(), 24) : v.size();
      v[g.below(limit)] ^= static_cast<uint8_t>(1 + g.below(255));
    }
  }
  if (kind != 0) v.resize(g.below(v.size() + 1));
  return v;
}

template <class F>
void expect_error_or_ok(F&& f, int round) {
  try {
    f();
  } catch (const resin::Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "round " << round << ": non-resin exception " << e.what();
  }
}

TEST(DataFuzz, DamagedIdxFiles) {
  TempDir dir;
  const auto images = testing::idx_bytes(0x00000803, {6, 7, 5}, testing::pattern(6 * 7 * 5, 2));
  const auto labels = testing::idx_bytes(0x00000801, {6}, testing::pattern(6, 3, 10));
  testing::write_gz(dir.file("img.gz"), images);
  const auto images_gz = testing::read_bytes(dir.file("img.gz"));
  testing::write_bytes(dir.file("lab"), labels);
  Generator g(2024);
  for (int round = 0; round < 200; ++round) {
    const bool gz = round % 2 == 0;
    const std::string path = dir.file(gz ? "m.gz" : "m");
    testing::write_bytes(path, mutate(gz ? images_gz : images, g));
    expect_error_or_ok([&] { load_idx_dataset(path, dir.file("lab"), 10); }, round);
    testing::write_bytes(dir.file("l2"), mutate(labels, g));
    expect_error_or_ok([&] { load_idx_dataset(dir.file("img.gz"), dir.file("l2"), 10); }, round);
  }
}

TEST(DataFuzz, DamagedCifarFiles) {
  TempDir dir;
  std::vector<uint8_t> rec;
  for (int r = 0; r < 3; ++r) {
    rec.push_back(static_cast<uint8_t>(r));
    const auto px = testing::pattern(3072, static_cast<uint32_t>(r));
    rec.insert(rec.end(), px.begin(), px.end());
  }
  Generator g(7);
  for (int round = 0; round < 100; ++round) {
    testing::write_bytes(dir.file("test_batch.bin"), mutate(rec, g));
    expect_error_or_ok([&] { load_cifar10(dir.str(), false); }, round);
  }
}

}  // namespace
}  // namespace resin::data
