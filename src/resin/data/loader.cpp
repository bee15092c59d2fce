#include "resin/data/loader.h"

#include <cstring>

#include "resin/data/sampler.h"

namespace resin::data {

namespace {
// Tags keep the shuffle (sampler.cpp) and augmentation streams independent even for equal (epoch, index).
constexpr uint64_t kAugmentTag = 0x4155474d454e54ull;  // "AUGMENT"
}  // namespace

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
                       TransformPtr transform)
    : dataset_(std::move(dataset)), opt_(options), transform_(std::move(transform)) {
  RESIN_CHECK(dataset_ != nullptr, "DataLoader: dataset is null");
  RESIN_CHECK(opt_.batch_size > 0, "DataLoader: batch_size must be positive, got ", opt_.batch_size);
  RESIN_CHECK(opt_.num_workers >= 0 && opt_.num_workers <= 256,
              "DataLoader: num_workers must be in [0, 256], got ", opt_.num_workers);
  RESIN_CHECK(opt_.u8_divisor > 0, "DataLoader: u8_divisor must be positive, got ", opt_.u8_divisor);
  RESIN_CHECK(opt_.prefetch_per_worker >= 1, "DataLoader: prefetch_per_worker must be >= 1, got ",
              opt_.prefetch_per_worker);
  RESIN_CHECK(dataset_->size() >= 0, "DataLoader: dataset reports a negative size ", dataset_->size());
  n_ = shard_size(dataset_->size(), opt_.num_replicas, opt_.rank, opt_.pad_shards);
  num_batches_ = opt_.drop_last ? n_ / opt_.batch_size : (n_ + opt_.batch_size - 1) / opt_.batch_size;
  capacity_ = opt_.num_workers * opt_.prefetch_per_worker;
  workers_.reserve(static_cast<size_t>(opt_.num_workers));
  try {
    for (int64_t i = 0; i < opt_.num_workers; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
    throw Error("DataLoader: could not start worker threads");
  }
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  RESIN_CHECK(epoch >= 0, "DataLoader: epoch must be >= 0, got ", epoch);
  return DistributedSampler(dataset_->size(), opt_.num_replicas, opt_.rank, opt_.shuffle, opt_.seed, opt_.pad_shards)
      .indices(epoch);
}

Batch DataLoader::make_batch(int64_t epoch, int64_t index) const {
  return make_batch_from(epoch_order(epoch), epoch, index);
}

Batch DataLoader::make_batch_from(const std::vector<int64_t>& order, int64_t epoch, int64_t index) const {
  RESIN_CHECK(index >= 0 && index < num_batches_, "DataLoader: batch index ", index, " out of range [0, ",
              num_batches_, ")");
  const int64_t begin = index * opt_.batch_size;
  const int64_t b = std::min(opt_.batch_size, n_ - begin);
  Batch out;
  out.epoch = epoch;
  out.index = index;
  out.indices.assign(order.begin() + begin, order.begin() + begin + b);
  out.labels = empty({b}, {.dtype = DType::i64});
  int64_t* labels = out.labels.data<int64_t>();
  const int64_t num_classes = dataset_->num_classes();
  Shape sample_shape;
  float* dst = nullptr;
  int64_t per = 0;
  for (int64_t k = 0; k < b; ++k) {
    const int64_t idx = out.indices[static_cast<size_t>(k)];
    Example ex = dataset_->get(idx);
    RESIN_CHECK(ex.image.defined() && ex.image.dim() == 3, "DataLoader: example ", idx,
                " must have an image [C, H, W], got ", ex.image.defined() ? ex.image.shape().str() : "none");
    RESIN_CHECK(ex.image.dtype() == DType::u8 || ex.image.dtype() == DType::f32, "DataLoader: example ", idx,
                " has a ", ex.image.dtype(), " image; expected u8 or f32");
    RESIN_CHECK(ex.label >= 0 && (num_classes <= 0 || ex.label < num_classes), "DataLoader: example ", idx,
                " has label ", ex.label, ", outside [0, ", num_classes, ")");
    if (k == 0) {
      sample_shape = ex.image.shape();
      per = sample_shape.numel();
      Shape s{b};
      for (auto d : sample_shape) s.push_back(d);
      out.images = empty(s, {.dtype = DType::f32});
      dst = out.images.data<float>();
    }
    RESIN_CHECK(ex.image.shape() == sample_shape, "DataLoader: example ", idx, " has image shape ",
                ex.image.shape(), " but the batch's first image has ", sample_shape,
                "; images in a batch must have one size");
    labels[k] = ex.label;
    float* o = dst + k * per;
    if (ex.image.dtype() == DType::u8) {
      // Divide (not multiply by the reciprocal) to match torchvision's ToTensor bit for bit.
      const float div = opt_.u8_divisor;
      if (ex.image.is_contiguous()) {
        const uint8_t* in = ex.image.data<uint8_t>();
        for (int64_t j = 0; j < per; ++j) o[j] = static_cast<float>(in[j]) / div;
      } else {
        const auto v = ex.image.values<uint8_t>();
        for (int64_t j = 0; j < per; ++j) o[j] = static_cast<float>(v[static_cast<size_t>(j)]) / div;
      }
    } else if (ex.image.is_contiguous()) {
      std::memcpy(o, ex.image.data<float>(), static_cast<size_t>(per) * sizeof(float));
    } else {
      const auto v = ex.image.values<float>();
      std::memcpy(o, v.data(), v.size() * sizeof(float));
    }
  }
  if (transform_ && b > 0) {
    uint64_t seed = mix_seed(mix_seed(mix_seed(opt_.seed, kAugmentTag), static_cast<uint64_t>(epoch)),
                             static_cast<uint64_t>(index));
    if (opt_.num_replicas > 1) seed = mix_seed(seed, static_cast<uint64_t>(opt_.rank));
    Generator g(seed);
    out.images = transform_->apply(out.images, g);
    RESIN_CHECK(out.images.defined() && out.images.dtype() == DType::f32 && out.images.dim() == 4 &&
                    out.images.size(0) == b && out.images.is_contiguous(),
                "DataLoader: transform ", transform_->name(), " must return a contiguous f32 [", b,
                ", C, H, W] batch");
  }
  return out;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  try {
    while (true) {
      work_cv_.wait(lk, [&] {
        return stop_ ||
               (active_ && !failed_ && next_claim_ < num_batches_ && next_claim_ < next_consume_ + capacity_);
      });
      if (stop_) return;
      const int64_t index = next_claim_++;
      const uint64_t generation = generation_;
      const int64_t epoch = epoch_;
      const std::shared_ptr<const std::vector<int64_t>> order = order_;
      lk.unlock();
      Result r;
      try {
        r.batch = make_batch_from(*order, epoch, index);
      } catch (...) {
        r.error = std::current_exception();
      }
      lk.lock();
      if (generation == generation_) {
        ready_.emplace(index, std::move(r));
        ready_cv_.notify_all();
      } else {
        // A restarted epoch made this result stale; free it outside the lock.
        lk.unlock();
        r = Result{};
        lk.lock();
      }
    }
  } catch (...) {
    // Only bookkeeping (e.g. a failed map insertion) can land here; tell the consumer instead of
    // letting the thread die silently (or std::terminate).
    if (!lk.owns_lock()) lk.lock();
    fatal_ = std::current_exception();
    ready_cv_.notify_all();
  }
}

void DataLoader::throw_batch_error(std::exception_ptr e, int64_t epoch, int64_t index) {
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
    what = "unknown exception";
  }
  RESIN_FAIL("DataLoader: making batch ", index, " of epoch ", epoch, " failed: ", what);
}

void DataLoader::start_epoch(int64_t epoch, int64_t start_batch) {
  RESIN_CHECK(epoch >= 0, "DataLoader::start_epoch: epoch must be >= 0, got ", epoch);
  RESIN_CHECK(start_batch >= 0 && start_batch <= num_batches_, "DataLoader::start_epoch: start_batch ",
              start_batch, " outside [0, ", num_batches_, "]");
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  std::map<int64_t, Result> stale;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(order);
    next_claim_ = next_consume_ = start_batch;
    stale.swap(ready_);
    active_ = true;
    failed_ = false;
  }
  work_cv_.notify_all();
}

std::optional<Batch> DataLoader::next() {
  std::unique_lock<std::mutex> lk(mu_);
  RESIN_CHECK(active_, "DataLoader::next: call start_epoch(epoch) first");
  RESIN_CHECK(!failed_, "DataLoader::next: epoch ", epoch_, " was aborted by an error in batch ",
              next_consume_ - 1, "; call start_epoch() to continue");
  if (next_consume_ >= num_batches_) return std::nullopt;
  const int64_t index = next_consume_, epoch = epoch_;
  Result r;
  if (workers_.empty()) {
    const auto order = order_;
    lk.unlock();  // nothing else touches the state without workers, but keep the lock short anyway
    try {
      r.batch = make_batch_from(*order, epoch, index);
    } catch (...) {
      r.error = std::current_exception();
    }
    lk.lock();
  } else {
    ready_cv_.wait(lk, [&] { return fatal_ != nullptr || ready_.count(index) > 0; });
    if (ready_.count(index) == 0) throw_batch_error(fatal_, epoch, index);
    r = std::move(ready_.extract(index).mapped());
  }
  ++next_consume_;
  if (r.error) failed_ = true;
  lk.unlock();
  work_cv_.notify_all();
  if (r.error) throw_batch_error(r.error, epoch, index);
  return std::move(r.batch);
}

int64_t DataLoader::epoch() const {
  std::lock_guard<std::mutex> lk(mu_);
  return epoch_;
}

int64_t DataLoader::next_batch_index() const {
  std::lock_guard<std::mutex> lk(mu_);
  return next_consume_;
}

}  // namespace resin::data
