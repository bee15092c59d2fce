// Datasets by name, with the standard normalisation and augmentation recipe for each.
#pragma once
#include <memory>
#include <string>

#include "resin/data/data.h"

namespace resin::train {

struct DataSpec {
  std::shared_ptr<const data::Dataset> train, test;
  int64_t channels = 0, image_size = 0, num_classes = 0;
  std::vector<float> mean, std;
  int64_t crop_padding = 0;  // RandomCrop padding of the standard augmentation
  bool hflip = false;        // horizontal flips are meaningful for this data
};

// name: fashion-mnist | mnist | cifar10 | cifar100. dir empty = the dataset's default location
// (/usr/share/datasets/fashion-mnist for Fashion-MNIST). Throws with install hints when missing.
DataSpec load_data(const std::string& name, const std::string& dir);
// Train-time transform (augment: random crop with padding, flips where meaningful) and normalisation.
data::TransformPtr train_transform(const DataSpec& d, bool augment);
data::TransformPtr test_transform(const DataSpec& d);

}  // namespace resin::train
