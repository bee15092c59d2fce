// Which examples a process reads in an epoch. One process reads the whole (shuffled) order; in
// data-parallel training each of R processes reads its own shard of the SAME order, with
// PyTorch's DistributedSampler semantics:
//   * every rank derives the epoch's permutation from (seed, epoch) alone, so all ranks agree
//     without communicating (epoch_permutation: the DataLoader's shuffle);
//   * with padding (training), the order is extended by repeating its beginning to a multiple of
//     R, so every rank gets ceil(n / R) examples and takes the same number of steps;
//     without padding (evaluation) shards differ by at most one and every example is read once;
//   * rank r reads order[r], order[r + R], order[r + 2R], ... (strided), so with a per-rank batch
//     of b = B / R, batch k of all ranks together holds exactly batch k of one process with batch
//     B reading the unsharded order — the same examples, the same steps.
#pragma once
#include <cstdint>
#include <vector>

namespace resin::data {

// The shuffled order of epoch `epoch` over n examples (Fisher-Yates from a generator seeded by
// (seed, epoch)); the DataLoader's order with shuffle on.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);

// The shard of `order` that replica `rank` of `num_replicas` reads (see above).
std::vector<int64_t> shard_indices(const std::vector<int64_t>& order, int64_t num_replicas, int64_t rank, bool pad);
// Its length, without building it.
int64_t shard_size(int64_t n, int64_t num_replicas, int64_t rank, bool pad);

class DistributedSampler {
 public:
  // pad = true: equal shards (training); false: every example once (evaluation).
  DistributedSampler(int64_t dataset_size, int64_t num_replicas, int64_t rank, bool shuffle = true,
                     uint64_t seed = 0, bool pad = true);
  int64_t num_samples() const { return shard_size(n_, replicas_, rank_, pad_); }
  // This rank's examples in epoch `epoch`, in reading order.
  std::vector<int64_t> indices(int64_t epoch) const;

 private:
  int64_t n_, replicas_, rank_;
  bool shuffle_;
  uint64_t seed_;
  bool pad_;
};

}  // namespace resin::data
