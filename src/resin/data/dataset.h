// Datasets: indexable collections of (image, label) examples.
//
// Contract: get(i) is const and must be safe to call concurrently from several threads (the
// DataLoader's workers do), and must return the same example every time for the same i.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "resin/core/rng.h"
#include "resin/tensor/tensor.h"

namespace resin::data {

struct Example {
  Tensor image;       // [C, H, W], dtype u8 (raw pixels 0..255) or f32
  int64_t label = 0;  // class index in [0, num_classes)
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Throws resin::Error when i is outside [0, size()).
  virtual Example get(int64_t i) const = 0;
  // Number of classes, or 0 when unknown.
  virtual int64_t num_classes() const { return 0; }
};

// All images in one tensor [N, C, H, W] (u8 or f32, made contiguous on construction) and labels as
// one i64 tensor [N]. get(i) returns a zero-copy view of image i (sharing the storage), so it costs
// no allocation for pixels. When num_classes > 0 every label is checked to lie in [0, num_classes).
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor images, Tensor labels, int64_t num_classes = 0);
  int64_t size() const override { return n_; }
  Example get(int64_t i) const override;
  int64_t num_classes() const override { return num_classes_; }

  const Tensor& images() const { return images_; }  // [N, C, H, W]
  const Tensor& labels() const { return labels_; }  // [N] i64

 private:
  Tensor images_, labels_;
  int64_t n_ = 0, num_classes_ = 0;
};

// A view of another dataset through a list of indices (each checked against the parent's size).
class SubsetDataset : public Dataset {
 public:
  SubsetDataset(std::shared_ptr<const Dataset> parent, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t i) const override;
  int64_t num_classes() const override { return parent_->num_classes(); }
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> parent_;
  std::vector<int64_t> indices_;
};

// The first n examples (n is clamped to the dataset size; n < 0 is an error).
std::shared_ptr<SubsetDataset> subset_first(std::shared_ptr<const Dataset> ds, int64_t n);
// n distinct examples drawn uniformly without replacement, in increasing index order; the choice
// depends only on `seed` (a resin::Generator stream). n is clamped to the dataset size.
std::shared_ptr<SubsetDataset> subset_random(std::shared_ptr<const Dataset> ds, int64_t n, uint64_t seed);

// A random permutation of 0..n-1 by Fisher-Yates from g (reproducible for a given generator state).
std::vector<int64_t> random_permutation(int64_t n, Generator& g);

// Mixes two 64-bit values into a well-spread seed (splitmix64 based); used to derive independent
// streams such as (seed, epoch) for shuffling and (seed, epoch, batch) for augmentation.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace resin::data
