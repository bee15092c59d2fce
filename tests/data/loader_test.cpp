#include "resin/data/loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "data_test_util.h"

namespace resin::data {
namespace {

using testing::expect_error;

std::shared_ptr<TensorDataset> synthetic(int64_t n, int64_t c = 1, int64_t h = 6, int64_t w = 6) {
  Tensor images = from_data<uint8_t>(testing::pattern(static_cast<size_t>(n * c * h * w), 17), {n, c, h, w});
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = (i * 7) % 10;
  return std::make_shared<TensorDataset>(images, from_data<int64_t>(labels, {n}), 10);
}

TransformPtr augment() {
  return std::make_shared<Compose>(std::vector<TransformPtr>{
      std::make_shared<RandomCrop>(2), std::make_shared<RandomHorizontalFlip>(),
      std::make_shared<Normalize>(std::vector<float>{0.2860f}, std::vector<float>{0.3530f}),
      std::make_shared<RandomErasing>(0.7)});
}

std::vector<Batch> collect(DataLoader& dl, int64_t epoch, int64_t start = 0) {
  dl.start_epoch(epoch, start);
  std::vector<Batch> out;
  while (auto b = dl.next()) out.push_back(std::move(*b));
  return out;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.is_contiguous() && b.is_contiguous() &&
         std::memcmp(a.raw_data(), b.raw_data(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].index, b[k].index) << what;
    EXPECT_EQ(a[k].epoch, b[k].epoch) << what;
    EXPECT_EQ(a[k].indices, b[k].indices) << what << " batch " << k;
    EXPECT_TRUE(same_tensor(a[k].images, b[k].images)) << what << " batch " << k;
    EXPECT_TRUE(same_tensor(a[k].labels, b[k].labels)) << what << " batch " << k;
  }
}

TEST(DataLoader, BatchesHoldTheDatasetInOrder) {
  auto ds = synthetic(10);
  DataLoader dl(ds, {.batch_size = 4});
  EXPECT_EQ(dl.num_batches(), 3);
  const auto batches = collect(dl, 0);
  ASSERT_EQ(batches.size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    const int64_t b = k < 2 ? 4 : 2;
    ASSERT_EQ(batches[k].images.shape(), (Shape{b, 1, 6, 6}));
    EXPECT_EQ(batches[k].images.dtype(), DType::f32);
    EXPECT_TRUE(batches[k].images.is_contiguous());
    EXPECT_EQ(batches[k].labels.dtype(), DType::i64);
    const auto px = batches[k].images.values<float>();
    const auto lab = batches[k].labels.values<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t idx = static_cast<int64_t>(k) * 4 + i;
      EXPECT_EQ(batches[k].indices[static_cast<size_t>(i)], idx);
      EXPECT_EQ(lab[static_cast<size_t>(i)], (idx * 7) % 10);
      const auto src = ds->get(idx).image.values<uint8_t>();
      for (size_t j = 0; j < src.size(); ++j) ASSERT_EQ(px[static_cast<size_t>(i) * 36 + j], src[j] / 255.0f);
    }
  }
}

TEST(DataLoader, SameSeedSameBatchesForAnyWorkerCount) {
  auto ds = synthetic(37);
  std::vector<std::vector<Batch>> runs;
  for (int64_t workers : {0, 1, 3}) {
    DataLoader dl(ds, {.batch_size = 5, .shuffle = true, .seed = 99, .num_workers = workers}, augment());
    auto e0 = collect(dl, 0);
    auto e1 = collect(dl, 1);
    e0.insert(e0.end(), e1.begin(), e1.end());
    runs.push_back(std::move(e0));
  }
  expect_same_batches(runs[0], runs[1], "0 vs 1 workers");
  expect_same_batches(runs[0], runs[2], "0 vs 3 workers");
  // And across two loaders with 3 workers and a tiny queue.
  DataLoader again(ds,
                   {.batch_size = 5, .shuffle = true, .seed = 99, .num_workers = 3, .prefetch_per_worker = 1},
                   augment());
  auto e0 = collect(again, 0);
  expect_same_batches({runs[0].begin(), runs[0].begin() + 8}, e0, "fresh loader");
}

TEST(DataLoader, ShuffleIsAPermutationPerEpochAndDependsOnSeedAndEpoch) {
  auto ds = synthetic(50);
  DataLoader dl(ds, {.batch_size = 7, .shuffle = true, .seed = 1, .num_workers = 2});
  std::vector<std::vector<int64_t>> orders;
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> seen;
    for (const auto& b : collect(dl, e)) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    EXPECT_EQ(seen, dl.epoch_order(e));
    std::set<int64_t> uniq(seen.begin(), seen.end());
    EXPECT_EQ(uniq.size(), 50u);
    EXPECT_EQ(*uniq.begin(), 0);
    EXPECT_EQ(*uniq.rbegin(), 49);
    orders.push_back(seen);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
  DataLoader other(ds, {.batch_size = 7, .shuffle = true, .seed = 2});
  EXPECT_NE(other.epoch_order(0), orders[0]);
  DataLoader plain(ds, {.batch_size = 7});
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(plain.epoch_order(3)[static_cast<size_t>(i)], i);
}

TEST(DataLoader, AugmentationDiffersBetweenEpochsAndBatches) {
  auto ds = synthetic(8);
  DataLoader dl(ds, {.batch_size = 4, .seed = 5}, augment());
  const Batch a = dl.make_batch(0, 0), b = dl.make_batch(1, 0), a2 = dl.make_batch(0, 0);
  EXPECT_EQ(a.indices, b.indices);  // no shuffle: same samples
  EXPECT_FALSE(same_tensor(a.images, b.images));
  EXPECT_TRUE(same_tensor(a.images, a2.images));
}

TEST(DataLoader, DropLast) {
  auto ds = synthetic(37);
  for (int64_t workers : {0, 2}) {
    DataLoader keep(ds, {.batch_size = 8, .num_workers = workers});
    DataLoader drop(ds, {.batch_size = 8, .drop_last = true, .num_workers = workers});
    EXPECT_EQ(keep.num_batches(), 5);
    EXPECT_EQ(drop.num_batches(), 4);
    const auto k = collect(keep, 0), d = collect(drop, 0);
    ASSERT_EQ(k.size(), 5u);
    ASSERT_EQ(d.size(), 4u);
    EXPECT_EQ(k.back().images.size(0), 5);
    for (const auto& b : d) EXPECT_EQ(b.images.size(0), 8);
  }
  DataLoader exact(synthetic(16), {.batch_size = 8, .drop_last = true});
  EXPECT_EQ(exact.num_batches(), 2);
  DataLoader tiny(synthetic(3), {.batch_size = 8, .drop_last = true, .num_workers = 2});
  EXPECT_EQ(tiny.num_batches(), 0);
  EXPECT_TRUE(collect(tiny, 0).empty());
}

TEST(DataLoader, ResumeFromBatchIndex) {
  auto ds = synthetic(45);
  for (int64_t workers : {0, 3}) {
    const DataLoaderOptions o{.batch_size = 4, .shuffle = true, .seed = 7, .num_workers = workers};
    DataLoader full(ds, o, augment());
    const auto all = collect(full, 2);
    ASSERT_EQ(all.size(), 12u);

    // Interrupted after 5 batches; a new loader resumes where the first left off.
    DataLoader first(ds, o, augment());
    first.start_epoch(2);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(first.next().has_value());
    EXPECT_EQ(first.epoch(), 2);
    EXPECT_EQ(first.next_batch_index(), 5);
    DataLoader resumed(ds, o, augment());
    const auto rest = collect(resumed, first.epoch(), first.next_batch_index());
    expect_same_batches({all.begin() + 5, all.end()}, rest, "resumed");
    EXPECT_TRUE(collect(resumed, 2, 12).empty());
    expect_error([&] { resumed.start_epoch(2, 13); }, {"start_batch 13"});
    expect_error([&] { resumed.start_epoch(-1); }, {"epoch must be >= 0"});
  }
}

TEST(DataLoader, RestartMidEpochDiscardsPrefetched) {
  auto ds = synthetic(40);
  const DataLoaderOptions o{
      .batch_size = 3, .shuffle = true, .seed = 11, .num_workers = 3, .prefetch_per_worker = 3};
  DataLoader dl(ds, o, augment());
  dl.start_epoch(0);
  ASSERT_TRUE(dl.next().has_value());
  ASSERT_TRUE(dl.next().has_value());
  const auto e1 = collect(dl, 1);
  DataLoader ref(ds, {.batch_size = 3, .shuffle = true, .seed = 11}, augment());
  expect_same_batches(collect(ref, 1), e1, "after restart");
}

TEST(DataLoader, NextBeforeStartAndAfterEnd) {
  DataLoader dl(synthetic(4), {.batch_size = 2, .num_workers = 1});
  expect_error([&] { dl.next(); }, {"start_epoch"});
  dl.start_epoch(0);
  EXPECT_TRUE(dl.next());
  EXPECT_TRUE(dl.next());
  EXPECT_FALSE(dl.next());
  EXPECT_FALSE(dl.next());
  expect_error([] { DataLoader(synthetic(4), {.batch_size = 0}); }, {"batch_size"});
  expect_error([] { DataLoader(nullptr, {}); }, {"null"});
}

// Fails on one index, with a resin::Error or another exception type.
class FailingDataset : public Dataset {
 public:
  FailingDataset(std::shared_ptr<const Dataset> inner, int64_t bad, bool resin_error)
      : inner_(std::move(inner)), bad_(bad), resin_error_(resin_error) {}
  int64_t size() const override { return inner_->size(); }
  int64_t num_classes() const override { return inner_->num_classes(); }
  Example get(int64_t i) const override {
    if (i == bad_) {
      if (resin_error_) RESIN_FAIL("sample ", i, " is unreadable");
      throw std::runtime_error("plain failure at " + std::to_string(i));
    }
    return inner_->get(i);
  }

 private:
  std::shared_ptr<const Dataset> inner_;
  int64_t bad_;
  bool resin_error_;
};

TEST(DataLoader, WorkerErrorsReachTheConsumer) {
  for (bool resin_error : {true, false}) {
    for (int64_t workers : {0, 1, 3}) {
      auto ds = std::make_shared<FailingDataset>(synthetic(20), 13, resin_error);
      DataLoader dl(ds, {.batch_size = 4, .num_workers = workers});
      dl.start_epoch(0);
      for (int i = 0; i < 3; ++i) ASSERT_TRUE(dl.next().has_value());
      expect_error([&] { dl.next(); },
                   {"batch 3 of epoch 0", resin_error ? "sample 13 is unreadable" : "plain failure at 13"});
      expect_error([&] { dl.next(); }, {"aborted", "start_epoch"});
      // The epoch can be resumed past the bad batch, or restarted.
      dl.start_epoch(0, 4);
      auto last = dl.next();
      ASSERT_TRUE(last.has_value());
      EXPECT_EQ(last->indices, (std::vector<int64_t>{16, 17, 18, 19}));
      EXPECT_FALSE(dl.next());
    }
  }
}

class OddDataset : public Dataset {
 public:
  explicit OddDataset(int mode) : mode_(mode) {}
  int64_t size() const override { return 4; }
  int64_t num_classes() const override { return 10; }
  Example get(int64_t i) const override {
    if (mode_ == 0) return {zeros({1, 2, i == 2 ? 3 : 2}), 0};   // one image of another size
    if (mode_ == 1) return {zeros({1, 2, 2}), i == 3 ? 12 : 1};  // a label out of range
    if (mode_ == 2) return {zeros({2, 2}), 0};                   // not [C, H, W]
    // f32 images strided (a transposed view): copied in logical order, unscaled.
    return {from_vector({1, 2, 3, 4}, {1, 2, 2}).transpose(1, 2), static_cast<int64_t>(i)};
  }

 private:
  int mode_;
};

TEST(DataLoader, ValidatesExamples) {
  for (int64_t workers : {0, 2}) {
    DataLoader shapes(std::make_shared<OddDataset>(0), {.batch_size = 4, .num_workers = workers});
    shapes.start_epoch(0);
    expect_error([&] { shapes.next(); }, {"example 2 has image shape", "one size"});
    DataLoader labels(std::make_shared<OddDataset>(1), {.batch_size = 4, .num_workers = workers});
    labels.start_epoch(0);
    expect_error([&] { labels.next(); }, {"label 12", "[0, 10)"});
    DataLoader dims(std::make_shared<OddDataset>(2), {.batch_size = 4, .num_workers = workers});
    dims.start_epoch(0);
    expect_error([&] { dims.next(); }, {"[C, H, W]"});
  }
  DataLoader f32(std::make_shared<OddDataset>(3), {.batch_size = 2});
  const Batch b = f32.make_batch(0, 1);
  EXPECT_EQ(b.images.values<float>(), (std::vector<float>{1, 3, 2, 4, 1, 3, 2, 4}));
  EXPECT_EQ(b.labels.values<int64_t>(), (std::vector<int64_t>{2, 3}));
}

class SlowDataset : public Dataset {
 public:
  explicit SlowDataset(std::shared_ptr<const Dataset> inner) : inner_(std::move(inner)) {}
  int64_t size() const override { return inner_->size(); }
  Example get(int64_t i) const override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return inner_->get(i);
  }

 private:
  std::shared_ptr<const Dataset> inner_;
};

TEST(DataLoader, DestructionMidEpochJoinsWorkers) {
  auto ds = std::make_shared<SlowDataset>(synthetic(200));
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 3; ++rep) {
    DataLoader dl(ds, {.batch_size = 4, .shuffle = true, .num_workers = 4, .prefetch_per_worker = 4});
    dl.start_epoch(rep);
    ASSERT_TRUE(dl.next().has_value());
  }
  { DataLoader never_started(ds, {.batch_size = 4, .num_workers = 3}); }
  // Bounded prefetch: destruction waits only for batches in flight, not the whole epoch (50 batches
  // of 8 ms each on 4 workers would take ~100 ms per loader).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(DataSubset, FirstAndRandom) {
  auto ds = synthetic(30);
  auto first = subset_first(ds, 10);
  ASSERT_EQ(first->size(), 10);
  EXPECT_EQ(first->num_classes(), 10);
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(first->get(i).label, ds->get(i).label);
    EXPECT_EQ(first->get(i).image.values<uint8_t>(), ds->get(i).image.values<uint8_t>());
  }
  EXPECT_EQ(subset_first(ds, 100)->size(), 30);
  auto r1 = subset_random(ds, 12, 4), r2 = subset_random(ds, 12, 4), r3 = subset_random(ds, 12, 5);
  EXPECT_EQ(r1->indices(), r2->indices());
  EXPECT_NE(r1->indices(), r3->indices());
  EXPECT_TRUE(std::is_sorted(r1->indices().begin(), r1->indices().end()));
  EXPECT_EQ(std::set<int64_t>(r1->indices().begin(), r1->indices().end()).size(), 12u);
  EXPECT_EQ(r1->get(3).label, ds->get(r1->indices()[3]).label);
  expect_error([&] { r1->get(12); }, {"out of range"});
  expect_error([&] { SubsetDataset(ds, {0, 30}); }, {"index 30", "[0, 30)"});
  expect_error([&] { subset_first(ds, -1); }, {"n must be >= 0"});
  // A subset feeds the loader like any dataset.
  DataLoader dl(first, {.batch_size = 4, .num_workers = 2});
  EXPECT_EQ(collect(dl, 0).size(), 3u);
}

TEST(DataTensorDataset, ValidatesInputs) {
  expect_error([] { TensorDataset(zeros({2, 1, 2}), zeros({2}, {.dtype = DType::i64})); }, {"[N, C, H, W]"});
  expect_error(
      [] {
        TensorDataset(zeros({2, 1, 2, 2}), zeros({3}, {.dtype = DType::i64}));
      },
      {"2 images but 3 labels"});
  expect_error([] { TensorDataset(zeros({2, 1, 2, 2}), zeros({2})); }, {"i64 labels"});
  expect_error(
      [] {
        TensorDataset(zeros({1, 1, 2, 2}), full({1}, 10, {.dtype = DType::i64}), 10);
      },
      {"label 10 of example 0"});
  // Views are made contiguous and get() returns the right image.
  Tensor imgs = from_vector({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2}).transpose(2, 3);
  TensorDataset ds(imgs, zeros({1}, {.dtype = DType::i64}));
  EXPECT_EQ(ds.get(0).image.values<float>(), (std::vector<float>{1, 3, 2, 4, 5, 7, 6, 8}));
}

}  // namespace
}  // namespace resin::data
