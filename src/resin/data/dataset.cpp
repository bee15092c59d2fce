#include "resin/data/dataset.h"

#include <algorithm>

#include "resin/core/rng.h"

namespace resin::data {

TensorDataset::TensorDataset(Tensor images, Tensor labels, int64_t num_classes) : num_classes_(num_classes) {
  RESIN_CHECK(images.defined() && labels.defined(), "TensorDataset: images and labels must be defined");
  RESIN_CHECK(images.dim() == 4, "TensorDataset: expected images [N, C, H, W], got shape ", images.shape());
  RESIN_CHECK(images.dtype() == DType::u8 || images.dtype() == DType::f32,
              "TensorDataset: expected u8 or f32 images, got ", images.dtype());
  RESIN_CHECK(labels.dim() == 1 && labels.dtype() == DType::i64,
              "TensorDataset: expected i64 labels [N], got ", labels.dtype(), " ", labels.shape());
  RESIN_CHECK(images.size(0) == labels.size(0), "TensorDataset: ", images.size(0), " images but ",
              labels.size(0), " labels");
  RESIN_CHECK(num_classes >= 0, "TensorDataset: num_classes must be >= 0, got ", num_classes);
  // detach(): the dataset never takes part in autograd, and contiguous() must not record history.
  images_ = images.detach().contiguous();
  labels_ = labels.detach().contiguous();
  n_ = images_.size(0);
  if (num_classes_ > 0) {
    const int64_t* l = labels_.data<int64_t>();
    for (int64_t i = 0; i < n_; ++i) {
      RESIN_CHECK(l[i] >= 0 && l[i] < num_classes_, "TensorDataset: label ", l[i], " of example ", i,
                  " is outside [0, ", num_classes_, ")");
    }
  }
}

Example TensorDataset::get(int64_t i) const {
  RESIN_CHECK(i >= 0 && i < n_, "TensorDataset::get: index ", i, " out of range [0, ", n_, ")");
  const Shape& s = images_.shape();
  const Shape sample{s[1], s[2], s[3]};
  const int64_t per = sample.numel();
  // A view sharing the storage: only shared_ptr copies, so concurrent get() calls are race-free.
  Tensor img(std::make_shared<TensorImpl>(images_.impl()->storage(), sample, contiguous_strides(sample),
                                          images_.offset() + i * per, images_.dtype()));
  return {img, labels_.data<int64_t>()[i]};
}

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> parent, std::vector<int64_t> indices)
    : parent_(std::move(parent)), indices_(std::move(indices)) {
  RESIN_CHECK(parent_ != nullptr, "SubsetDataset: parent dataset is null");
  const int64_t n = parent_->size();
  for (size_t k = 0; k < indices_.size(); ++k) {
    RESIN_CHECK(indices_[k] >= 0 && indices_[k] < n, "SubsetDataset: index ", indices_[k], " at position ", k,
                " is outside the parent's range [0, ", n, ")");
  }
}

Example SubsetDataset::get(int64_t i) const {
  RESIN_CHECK(i >= 0 && i < size(), "SubsetDataset::get: index ", i, " out of range [0, ", size(), ")");
  return parent_->get(indices_[static_cast<size_t>(i)]);
}

std::shared_ptr<SubsetDataset> subset_first(std::shared_ptr<const Dataset> ds, int64_t n) {
  RESIN_CHECK(ds != nullptr, "subset_first: dataset is null");
  RESIN_CHECK(n >= 0, "subset_first: n must be >= 0, got ", n);
  std::vector<int64_t> idx(static_cast<size_t>(std::min(n, ds->size())));
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<int64_t>(k);
  return std::make_shared<SubsetDataset>(std::move(ds), std::move(idx));
}

std::shared_ptr<SubsetDataset> subset_random(std::shared_ptr<const Dataset> ds, int64_t n, uint64_t seed) {
  RESIN_CHECK(ds != nullptr, "subset_random: dataset is null");
  RESIN_CHECK(n >= 0, "subset_random: n must be >= 0, got ", n);
  Generator g(seed);
  std::vector<int64_t> perm = random_permutation(ds->size(), g);
  perm.resize(static_cast<size_t>(std::min(n, ds->size())));
  std::sort(perm.begin(), perm.end());
  return std::make_shared<SubsetDataset>(std::move(ds), std::move(perm));
}

std::vector<int64_t> random_permutation(int64_t n, Generator& g) {
  RESIN_CHECK(n >= 0, "random_permutation: n must be >= 0, got ", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(g.below(static_cast<uint64_t>(i + 1)));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b) { return splitmix64(splitmix64(a) ^ (b + 0x632be59bd9b4e019ull)); }

}  // namespace resin::data
