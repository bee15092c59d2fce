#include "resin/models/zoo.h"

#include <algorithm>

#include "resin/autograd/grad_mode.h"
#include "resin/models/lab_models.h"
#include "resin/models/resnet.h"
#include "resin/ops/profile.h"

namespace resin::models {

namespace {

using blocks::ShortcutKind;

ZooEntry cifar_resnet(int64_t depth, bool residual, ShortcutKind sc, const std::string& suffix) {
  const int64_t n = (depth - 2) / 6;
  const std::string base = (residual ? "resnet" : "plain") + std::to_string(depth);
  ZooEntry e;
  e.name = base + suffix;
  e.family = residual ? "resnet-cifar" : "plain-cifar";
  e.description = str_cat(residual ? "ResNet" : "Plain net", "-", depth, " for 32x32 inputs (He et al. 2015, 6n+2 with n=", n,
                          residual ? (sc == ShortcutKind::zero_pad ? ", option A shortcuts)" : ", option B shortcuts)") : ")");
  e.paper_args = {.in_channels = 3, .num_classes = 10, .image_size = 32};
  e.make = [=](const ModelArgs& a) -> nn::ModulePtr {
    return std::make_shared<ResNet>(ResNetConfig{.block = BlockKind::basic, .layers = {n, n, n}, .widths = {16, 32, 64},
                                                 .stem = StemKind::cifar, .in_channels = a.in_channels,
                                                 .num_classes = a.num_classes, .shortcut = sc, .residual = residual});
  };
  return e;
}

ZooEntry imagenet_resnet(const std::string& name, const std::string& family, BlockKind block,
                         std::vector<int64_t> layers, int64_t groups, int64_t width, bool residual,
                         const std::string& desc) {
  ZooEntry e;
  e.name = name;
  e.family = family;
  e.description = desc;
  e.paper_args = {.in_channels = 3, .num_classes = 1000, .image_size = 224};
  e.make = [=](const ModelArgs& a) -> nn::ModulePtr {
    return std::make_shared<ResNet>(ResNetConfig{.block = block, .layers = layers, .widths = {64, 128, 256, 512},
                                                 .stem = StemKind::imagenet, .in_channels = a.in_channels,
                                                 .num_classes = a.num_classes, .groups = groups,
                                                 .width_per_group = width, .residual = residual});
  };
  return e;
}

std::vector<ZooEntry> build_zoo() {
  std::vector<ZooEntry> z;
  for (int64_t d : {20, 32, 44, 56, 110, 1202}) {
    z.push_back(cifar_resnet(d, true, ShortcutKind::zero_pad, ""));
    z.push_back(cifar_resnet(d, true, ShortcutKind::projection, "_b"));
  }
  for (int64_t d : {20, 32, 44, 56, 110}) z.push_back(cifar_resnet(d, false, ShortcutKind::zero_pad, ""));
  const auto B = BlockKind::basic, K = BlockKind::bottleneck;
  struct Spec { const char* name; BlockKind b; std::vector<int64_t> layers; };
  for (const Spec& s : {Spec{"18", B, {2, 2, 2, 2}}, Spec{"34", B, {3, 4, 6, 3}}, Spec{"50", K, {3, 4, 6, 3}},
                        Spec{"101", K, {3, 4, 23, 3}}, Spec{"152", K, {3, 8, 36, 3}}}) {
    z.push_back(imagenet_resnet(std::string("resnet") + s.name, "resnet", s.b, s.layers, 1, 64, true,
                                std::string("ResNet-") + s.name + " (He et al. 2015; torchvision)"));
    z.push_back(imagenet_resnet(std::string("plain") + s.name, "plain", s.b, s.layers, 1, 64, false,
                                std::string("Plain-") + s.name + ": ResNet-" + s.name + " without shortcuts"));
  }
  z.push_back(imagenet_resnet("wide_resnet50_2", "wide_resnet", K, {3, 4, 6, 3}, 1, 128, true, "Wide ResNet-50-2 (torchvision)"));
  z.push_back(imagenet_resnet("wide_resnet101_2", "wide_resnet", K, {3, 4, 23, 3}, 1, 128, true, "Wide ResNet-101-2 (torchvision)"));
  z.push_back(imagenet_resnet("resnext50_32x4d", "resnext", K, {3, 4, 6, 3}, 32, 4, true, "ResNeXt-50 32x4d (Xie et al. 2017)"));
  z.push_back(imagenet_resnet("resnext101_32x8d", "resnext", K, {3, 4, 23, 3}, 32, 8, true, "ResNeXt-101 32x8d"));
  z.push_back(imagenet_resnet("resnext101_64x4d", "resnext", K, {3, 4, 23, 3}, 64, 4, true, "ResNeXt-101 64x4d"));
  for (auto& e : lab_zoo_entries()) z.push_back(std::move(e));
  return z;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<ZooEntry>& zoo() {
  static const std::vector<ZooEntry> z = build_zoo();
  return z;
}

const ZooEntry& zoo_entry(const std::string& name) {
  for (const auto& e : zoo())
    if (e.name == name) return e;
  std::vector<std::pair<size_t, std::string>> near;
  for (const auto& e : zoo()) near.emplace_back(edit_distance(name, e.name), e.name);
  std::sort(near.begin(), near.end());
  std::string hint;
  for (size_t i = 0; i < near.size() && i < 3; ++i) hint += (i ? ", " : "") + near[i].second;
  RESIN_FAIL("unknown model '", name, "'. Did you mean: ", hint, "? (`resin zoo` lists all ", zoo().size(), " models)");
}

nn::ModulePtr create_model(const std::string& name, const ModelArgs& args) {
  // "family:key=value,..." builds any configuration of the lab's models (lab_models.h).
  if (name.find(':') != std::string::npos) return create_lab_model(name, args);
  return zoo_entry(name).make(args);
}

int64_t count_macs(nn::Module& model, int64_t in_channels, int64_t image_size) {
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  MacCounter counter;
  model.forward(zeros({1, in_channels, image_size, image_size}));
  model.train(was_training);
  return counter.macs();
}

}  // namespace resin::models
