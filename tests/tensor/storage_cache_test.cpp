// The storage allocator's block cache: big blocks are reused, small ones are not cached, the live
// counters ignore cached blocks, and trim empties the cache.
#include <gtest/gtest.h>

#include "resin/tensor/storage_cache.h"
#include "resin/tensor/tensor.h"

namespace resin {
namespace {

TEST(StorageCache, BigBlocksAreReusedAndNotCountedAsLive) {
  trim_storage_cache();
  const int64_t live = allocator_stats().current_bytes;
  void* first = nullptr;
  {
    Tensor t = empty({1 << 18});  // 1 MiB
    first = t.raw_data();
    EXPECT_EQ(allocator_stats().current_bytes, live + (1 << 20));
  }
  EXPECT_EQ(allocator_stats().current_bytes, live);
  EXPECT_GE(storage_cache_bytes(), 1 << 20);
  Tensor again = empty({(1 << 18) - 100});  // a little smaller: the same block serves it
  EXPECT_EQ(again.raw_data(), first);
  EXPECT_EQ(storage_cache_bytes(), 0);
  Tensor bigger = empty({1 << 19});  // twice the size: never served by a smaller block
  EXPECT_NE(bigger.raw_data(), first);
}

TEST(StorageCache, SmallBlocksAndTrim) {
  trim_storage_cache();
  { Tensor small = empty({1000}); }
  EXPECT_EQ(storage_cache_bytes(), 0);
  { Tensor big = empty({1 << 20}); }
  EXPECT_GT(storage_cache_bytes(), 0);
  trim_storage_cache();
  EXPECT_EQ(storage_cache_bytes(), 0);
}

TEST(StorageCache, ReusedBlocksHoldWhatIsWritten) {
  trim_storage_cache();
  { Tensor a = full({1 << 17}, 7.0); }
  Tensor z = zeros({1 << 17});  // a reused block must still come back zeroed by zeros()
  for (double v : z.to_vector()) ASSERT_EQ(v, 0.0);
}

}  // namespace
}  // namespace resin
