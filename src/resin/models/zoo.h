// The model zoo: names (torchvision/timm spelling where one exists) mapped to configurations of
// three builders — ResNet (resnet.h: ResNet, plain, ResNeXt, Wide ResNet, CIFAR ResNets,
// pre-activation ResNets, WRN-d-k, ResNeXt-29), DenseNet (densenet.h) and VGG (vgg.h). Input
// channels, input size and class count are arguments.
//
// Families: resnet, plain, wide_resnet, resnext, densenet, vgg (ImageNet, 224x224, torchvision's
// models parameter for parameter); resnet-cifar, plain-cifar (He et al. 2015), preact-resnet-cifar
// (He et al. 2016), wrn-cifar (Zagoruyko & Komodakis 2016), resnext-cifar (Xie et al. 2017),
// densenet-cifar (Huang et al. 2017) (32x32, the papers' configurations).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resin/nn/module.h"

namespace resin::models {

struct ModelArgs {
  int64_t in_channels = 3;
  int64_t num_classes = 10;
  int64_t image_size = 32;  // informative (used for MAC counts); networks are size-agnostic
  // Dropout probability where the family defines one: wrn-cifar (between the 3x3 convs; default 0),
  // densenet / densenet-cifar (default 0), vgg (classifier; default 0.5). Setting it for any other
  // family throws.
  std::optional<double> dropout = std::nullopt;
};

struct ZooEntry {
  std::string name;
  std::string family;       // "resnet-cifar", "plain-cifar", "resnet", "resnext", "wide_resnet", ...
  std::string description;  // one line
  ModelArgs paper_args;     // the paper's configuration (for `resin zoo`)
  int64_t min_image_size = 1;  // smallest square input the network accepts (VGG 32, ImageNet DenseNet 29)
  std::function<nn::ModulePtr(const ModelArgs&)> make = nullptr;
};

const std::vector<ZooEntry>& zoo();
// Throws resin::Error listing close matches when the name is unknown.
const ZooEntry& zoo_entry(const std::string& name);
nn::ModulePtr create_model(const std::string& name, const ModelArgs& args);
// Multiply-accumulates of one forward pass for a single image of the given size.
int64_t count_macs(nn::Module& model, int64_t in_channels, int64_t image_size);

}  // namespace resin::models
