// DistributedSampler and the DataLoader's sharding: PyTorch's semantics, and the property data
// parallelism rests on — batch k of all ranks together is batch k of one process.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "resin/data/loader.h"
#include "resin/data/sampler.h"

namespace resin::data {
namespace {

TEST(Sampler, StridedShardsPaddedLikeTorch) {
  std::vector<int64_t> order(10);
  for (int64_t i = 0; i < 10; ++i) order[static_cast<size_t>(i)] = 100 + i;
  // torch: indices += indices[:2]; rank r takes indices[r:12:3]
  EXPECT_EQ(shard_indices(order, 3, 0, true), (std::vector<int64_t>{100, 103, 106, 109}));
  EXPECT_EQ(shard_indices(order, 3, 1, true), (std::vector<int64_t>{101, 104, 107, 100}));
  EXPECT_EQ(shard_indices(order, 3, 2, true), (std::vector<int64_t>{102, 105, 108, 101}));
  // Without padding every example appears exactly once.
  EXPECT_EQ(shard_indices(order, 3, 0, false), (std::vector<int64_t>{100, 103, 106, 109}));
  EXPECT_EQ(shard_indices(order, 3, 1, false), (std::vector<int64_t>{101, 104, 107}));
  EXPECT_EQ(shard_indices(order, 3, 2, false), (std::vector<int64_t>{102, 105, 108}));
  // Fewer examples than ranks: padding repeats the order as often as needed.
  EXPECT_EQ(shard_indices({7, 8}, 5, 4, true), (std::vector<int64_t>{7}));
  EXPECT_EQ(shard_indices({7, 8}, 5, 4, false), (std::vector<int64_t>{}));
  EXPECT_EQ(shard_size(0, 4, 1, true), 0);
}

TEST(Sampler, SameSeededPermutationOnEveryRankDisjointShards) {
  const int64_t n = 53, world = 4;
  std::map<int64_t, int> seen;
  for (int64_t r = 0; r < world; ++r) {
    DistributedSampler s(n, world, r, true, 9, false);
    const auto idx = s.indices(3);
    EXPECT_EQ(static_cast<int64_t>(idx.size()), s.num_samples());
    for (int64_t i : idx) ++seen[i];
    // Each shard is the strided slice of the one permutation every rank computes alone.
    EXPECT_EQ(idx, shard_indices(epoch_permutation(n, 9, 3), world, r, false));
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
  for (auto& [i, count] : seen) EXPECT_EQ(count, 1) << i;
  // Epochs reshuffle; one replica is the plain permutation.
  EXPECT_NE(DistributedSampler(n, 1, 0, true, 9).indices(3), DistributedSampler(n, 1, 0, true, 9).indices(4));
  EXPECT_EQ(DistributedSampler(n, 1, 0, true, 9).indices(3), epoch_permutation(n, 9, 3));
}

TEST(Sampler, BadArgumentsAreErrors) {
  EXPECT_THROW(DistributedSampler(10, 2, 2), Error);
  EXPECT_THROW(DistributedSampler(10, 0, 0), Error);
  EXPECT_THROW(DistributedSampler(-1, 2, 0), Error);
  EXPECT_THROW(DataLoader(std::make_shared<TensorDataset>(zeros({4, 1, 2, 2}), zeros({4}, {.dtype = DType::i64})),
                          {.batch_size = 2, .num_replicas = 2, .rank = 5}),
               Error);
}

std::shared_ptr<TensorDataset> numbered(int64_t n) {
  Tensor images = empty({n, 1, 1, 1});
  for (int64_t i = 0; i < n; ++i) images.data<float>()[i] = static_cast<float>(i);
  return std::make_shared<TensorDataset>(images, zeros({n}, {.dtype = DType::i64}));
}

TEST(Sampler, ShardedBatchesTogetherAreTheSingleProcessBatch) {
  const int64_t n = 101, B = 12, world = 3;
  auto ds = numbered(n);
  DataLoader one(ds, {.batch_size = B, .shuffle = true, .drop_last = true, .seed = 5});
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int64_t r = 0; r < world; ++r)
    ranks.push_back(std::make_unique<DataLoader>(
        ds, DataLoaderOptions{.batch_size = B / world, .shuffle = true, .drop_last = true, .seed = 5,
                              .num_replicas = world, .rank = r}));
  for (auto& l : ranks) EXPECT_EQ(l->num_batches(), one.num_batches());  // ceil(101/3)=34 -> 8 batches of 4
  for (int64_t epoch : {0, 2}) {
    one.start_epoch(epoch);
    for (auto& l : ranks) l->start_epoch(epoch);
    while (auto b = one.next()) {
      std::vector<int64_t> together;
      for (auto& l : ranks) {
        auto rb = l->next();
        ASSERT_TRUE(rb.has_value());
        EXPECT_EQ(rb->index, b->index);
        for (int64_t k = 0; k < rb->images.numel(); ++k)
          together.push_back(static_cast<int64_t>(rb->images.data<float>()[k]));
      }
      std::vector<int64_t> expect = b->indices;
      std::sort(together.begin(), together.end());
      std::sort(expect.begin(), expect.end());
      EXPECT_EQ(together, expect) << "epoch " << epoch << " batch " << b->index;
    }
  }
}

}  // namespace
}  // namespace resin::data
