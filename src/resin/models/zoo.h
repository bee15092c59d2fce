// The model zoo: names (torchvision/timm spelling where one exists) mapped to configurations of a
// few builders. Input channels, input size and class count are arguments.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "resin/nn/module.h"

namespace resin::models {

struct ModelArgs {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  int64_t image_size = 32;  // informative (used for MAC counts); networks are size-agnostic
};

struct ZooEntry {
  std::string name;
  std::string family;       // "resnet-cifar", "plain-cifar", "resnet", "resnext", "wide_resnet", ...
  std::string description;  // one line
  ModelArgs paper_args;     // the paper's configuration (for `resin zoo`)
  std::function<nn::ModulePtr(const ModelArgs&)> make;
};

const std::vector<ZooEntry>& zoo();
// Throws resin::Error listing close matches when the name is unknown.
const ZooEntry& zoo_entry(const std::string& name);
nn::ModulePtr create_model(const std::string& name, const ModelArgs& args);
// Multiply-accumulates of one forward pass for a single image of the given size.
int64_t count_macs(nn::Module& model, int64_t in_channels, int64_t image_size);

}  // namespace resin::models
