// DataLoader: batches, shuffling, augmentation and background prefetch, reproducible bit for bit.
//
// Determinism: batch `index` of epoch `epoch` is a pure function of (dataset, options, transform,
// epoch, index) — make_batch() computes exactly it:
//   * order: with shuffle, a Fisher-Yates permutation drawn from Generator(mix(seed, epoch)); without,
//     0..N-1. Batch k holds order[k*B .. k*B+B) (the last one shorter unless drop_last).
//   * data parallelism (num_replicas > 1): the order is this rank's shard of that permutation
//     (data/sampler.h: strided, padded to equal shards unless pad_shards is off), so every rank
//     reads different examples of the same epoch order.
//   * augmentation: the transform runs with its own Generator(mix(seed, epoch, index)) (and the
//     rank, when num_replicas > 1, so ranks draw different crops and flips).
// So the worker count and thread timing never change the batches, and resuming at (epoch, index)
// reproduces the uninterrupted run exactly: start_epoch(epoch, index).
//
// Threads: with num_workers = 0 batches are made inside next() on the calling thread. With
// num_workers > 0, that many std::threads make upcoming batches; at most num_workers *
// prefetch_per_worker batches are ready or in flight, and next() hands them out strictly in index
// order. Workers call Dataset::get and Transform::apply concurrently (both must be thread-safe for
// const use, as the ones in resin::data are). The destructor stops and joins the workers (a batch in
// progress finishes first).
//
// Errors: an exception while making a batch (dataset, transform, allocation) is caught in the worker
// and rethrown by next() on the consumer's thread as resin::Error naming the epoch and batch; the
// epoch is then aborted (further next() calls throw until start_epoch).
//
// A DataLoader is used from one consumer thread at a time (next/start_epoch are not for concurrent
// calls); it is neither copyable nor movable.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "resin/data/dataset.h"
#include "resin/data/transforms.h"

namespace resin::data {

struct Batch {
  Tensor images;                 // f32 [B, C, H, W], contiguous
  Tensor labels;                 // i64 [B]
  std::vector<int64_t> indices;  // the dataset indices of the B samples, in order
  int64_t epoch = 0;
  int64_t index = 0;  // batch index within the epoch
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;  // drop a final batch smaller than batch_size
  uint64_t seed = 0;
  int64_t num_workers = 0;  // 0: no threads
  int64_t prefetch_per_worker = 2;
  // u8 pixels become f32 pixel / u8_divisor, as torchvision's ToTensor; f32 images are copied as they are.
  float u8_divisor = 255.0f;
  // Data-parallel sharding (DistributedSampler): this process is `rank` of num_replicas.
  int64_t num_replicas = 1, rank = 0;
  bool pad_shards = true;  // equal shards (training); false: every example once (evaluation)
};

class DataLoader {
 public:
  // transform (may be null) runs on each collated f32 batch; use Compose for several.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
             TransformPtr transform = nullptr);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const { return num_batches_; }
  int64_t dataset_size() const { return dataset_->size(); }
  int64_t samples_per_epoch() const { return n_; }  // this rank's shard
  const DataLoaderOptions& options() const { return opt_; }

  // Starts epoch `epoch` (>= 0) at batch start_batch in [0, num_batches()]; discards anything
  // prefetched for an earlier start. Must be called before next().
  void start_epoch(int64_t epoch, int64_t start_batch = 0);
  // The next batch of the current epoch, or nullopt after its last batch.
  std::optional<Batch> next();
  // Where the consumer is: resume later with start_epoch(epoch(), next_batch_index()).
  int64_t epoch() const;
  int64_t next_batch_index() const;

  // The sample order of an epoch (this rank's shard of it).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  // Batch `index` of `epoch`, made synchronously on the calling thread (what the workers run).
  Batch make_batch(int64_t epoch, int64_t index) const;

 private:
  struct Result {
    Batch batch;
    std::exception_ptr error;
  };
  Batch make_batch_from(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const;
  void worker_loop();
  [[noreturn]] void throw_batch_error(std::exception_ptr e, int64_t epoch, int64_t index);

  // Immutable after construction (read by workers without locking).
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions opt_;
  TransformPtr transform_;
  int64_t n_ = 0, num_batches_ = 0, capacity_ = 0;  // n_: samples per epoch on this rank

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false, active_ = false, failed_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch; results of older generations are dropped
  int64_t epoch_ = 0, next_claim_ = 0, next_consume_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  std::map<int64_t, Result> ready_;
  std::exception_ptr fatal_;          // a worker failed outside a batch (should not happen)
  std::vector<std::thread> workers_;  // last member: joined before the rest is destroyed
};

}  // namespace resin::data
