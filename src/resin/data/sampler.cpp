#include "resin/data/sampler.h"

#include "resin/core/error.h"
#include "resin/data/dataset.h"

namespace resin::data {

namespace {
constexpr uint64_t kShuffleTag = 0x53485546464c45ull;  // "SHUFFLE": independent of the augmentation stream
}

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  RESIN_CHECK(epoch >= 0, "epoch_permutation: epoch must be >= 0, got ", epoch);
  Generator g(mix_seed(mix_seed(seed, kShuffleTag), static_cast<uint64_t>(epoch)));
  return random_permutation(n, g);
}

int64_t shard_size(int64_t n, int64_t num_replicas, int64_t rank, bool pad) {
  RESIN_CHECK(num_replicas >= 1 && rank >= 0 && rank < num_replicas, "DistributedSampler: rank ", rank,
              " outside [0, ", num_replicas, ")");
  RESIN_CHECK(n >= 0, "DistributedSampler: dataset size must be >= 0, got ", n);
  if (n == 0) return 0;
  if (pad) return (n + num_replicas - 1) / num_replicas;
  return n / num_replicas + (rank < n % num_replicas ? 1 : 0);
}

std::vector<int64_t> shard_indices(const std::vector<int64_t>& order, int64_t num_replicas, int64_t rank, bool pad) {
  const auto n = static_cast<int64_t>(order.size());
  const int64_t count = shard_size(n, num_replicas, rank, pad);
  std::vector<int64_t> out(static_cast<size_t>(count));
  // Position k of the shard is position rank + k * R of the order padded cyclically.
  for (int64_t k = 0; k < count; ++k) out[static_cast<size_t>(k)] = order[static_cast<size_t>((rank + k * num_replicas) % n)];
  return out;
}

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank, bool shuffle,
                                       uint64_t seed, bool pad)
    : n_(dataset_size), replicas_(num_replicas), rank_(rank), shuffle_(shuffle), seed_(seed), pad_(pad) {
  shard_size(n_, replicas_, rank_, pad_);  // validates
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  RESIN_CHECK(epoch >= 0, "DistributedSampler: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> order;
  if (shuffle_) {
    order = epoch_permutation(n_, seed_, epoch);
  } else {
    order.resize(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) order[static_cast<size_t>(i)] = i;
  }
  if (replicas_ == 1) return order;
  return shard_indices(order, replicas_, rank_, pad_);
}

}  // namespace resin::data
