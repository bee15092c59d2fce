#include "resin/models/zoo.h"

#include <algorithm>

#include "resin/autograd/grad_mode.h"
#include "resin/models/densenet.h"
#include "resin/models/lab_models.h"
#include "resin/models/resnet.h"
#include "resin/models/vgg.h"
#include "resin/ops/profile.h"

namespace resin::models {

namespace {

using blocks::ShortcutKind;

const ModelArgs kCifar{.in_channels = 3, .num_classes = 10, .image_size = 32};
const ModelArgs kImageNet{.in_channels = 3, .num_classes = 1000, .image_size = 224};

// Families without a dropout option reject one, rather than silently ignoring it.
void check_no_dropout(const ModelArgs& a, const std::string& name) {
  RESIN_CHECK(!a.dropout.has_value() || *a.dropout == 0.0, name, ": this model has no dropout option (got dropout=",
              a.dropout.value_or(0.0), "); wrn-*, densenet* and vgg* have one");
}

// `dropout_option`: ModelArgs::dropout sets ResNetConfig::dropout (WRN); otherwise it must be unset.
ZooEntry resnet_entry(std::string name, std::string family, std::string desc, const ModelArgs& paper, ResNetConfig c,
                      bool dropout_option = false) {
  ZooEntry e{.name = name, .family = std::move(family), .description = std::move(desc), .paper_args = paper};
  e.make = [name, c, dropout_option](const ModelArgs& a) -> nn::ModulePtr {
    ResNetConfig ci = c;
    ci.in_channels = a.in_channels;
    ci.num_classes = a.num_classes;
    if (dropout_option) ci.dropout = a.dropout.value_or(0.0);
    else check_no_dropout(a, name);
    return std::make_shared<ResNet>(ci);
  };
  return e;
}

ZooEntry cifar_resnet(int64_t depth, bool residual, ShortcutKind sc, const std::string& suffix) {
  const int64_t n = (depth - 2) / 6;
  const std::string base = (residual ? "resnet" : "plain") + std::to_string(depth);
  return resnet_entry(base + suffix, residual ? "resnet-cifar" : "plain-cifar",
                      str_cat(residual ? "ResNet" : "Plain net", "-", depth, " for 32x32 inputs (He et al. 2015, 6n+2 with n=", n,
                              residual ? (sc == ShortcutKind::zero_pad ? ", option A shortcuts)" : ", option B shortcuts)") : ")"),
                      kCifar,
                      {.block = BlockKind::basic, .layers = {n, n, n}, .widths = {16, 32, 64}, .stem = StemKind::cifar,
                       .shortcut = sc, .residual = residual});
}

// He et al. 2016: 110 with basic units (6n+2, option A as fb.resnet.torch's CIFAR default), 164 and
// 1001 with bottleneck units (9n+2, projection shortcuts as the authors' ResNet-1001 code).
ZooEntry preact_resnet(int64_t depth, BlockKind block) {
  const int64_t n = block == BlockKind::basic ? (depth - 2) / 6 : (depth - 2) / 9;
  return resnet_entry(str_cat("preact_resnet", depth), "preact-resnet-cifar",
                      str_cat("Pre-activation ResNet-", depth, " (He et al. 2016), ",
                              block == BlockKind::basic ? "basic" : "bottleneck", " units, n=", n),
                      kCifar,
                      {.block = block, .layers = {n, n, n}, .widths = {16, 32, 64}, .stem = StemKind::cifar,
                       .shortcut = block == BlockKind::basic ? ShortcutKind::zero_pad : ShortcutKind::projection,
                       .preact = true, .stem_width = 16});
}

// Zagoruyko & Komodakis 2016: WRN-d-k, d = 6n+4, pre-activation basic units, widths 16, 16k, 32k, 64k.
ZooEntry wide_resnet_cifar(int64_t depth, int64_t k) {
  const int64_t n = (depth - 4) / 6;
  return resnet_entry(str_cat("wrn_", depth, "_", k), "wrn-cifar",
                      str_cat("Wide ResNet WRN-", depth, "-", k, " (Zagoruyko & Komodakis 2016), n=", n,
                              ", optional dropout between convs"),
                      kCifar,
                      {.block = BlockKind::basic, .layers = {n, n, n}, .widths = {16 * k, 32 * k, 64 * k},
                       .stem = StemKind::cifar, .shortcut = ShortcutKind::projection, .preact = true, .stem_width = 16},
                      /*dropout_option=*/true);
}

// Xie et al. 2017 §5.3: ResNeXt-29 (3 stages of 3 bottlenecks, 3x3 stem of 64), cardinality C,
// bottleneck width d = 64 in stage 1 (group conv C*d, 2C*d, 4C*d wide), outputs 256, 512, 1024.
ZooEntry resnext_cifar(int64_t cardinality) {
  return resnet_entry(str_cat("resnext29_", cardinality, "x64d"), "resnext-cifar",
                      str_cat("ResNeXt-29 ", cardinality, "x64d for 32x32 inputs (Xie et al. 2017)"), kCifar,
                      {.block = BlockKind::bottleneck, .layers = {3, 3, 3}, .widths = {64, 128, 256},
                       .stem = StemKind::cifar, .groups = cardinality, .width_per_group = 64});
}

ZooEntry imagenet_resnet(const std::string& name, const std::string& family, BlockKind block,
                         std::vector<int64_t> layers, int64_t groups, int64_t width, bool residual,
                         const std::string& desc) {
  return resnet_entry(name, family, desc, kImageNet,
                      {.block = block, .layers = std::move(layers), .widths = {64, 128, 256, 512},
                       .stem = StemKind::imagenet, .groups = groups, .width_per_group = width, .residual = residual});
}

ZooEntry densenet_entry(std::string name, std::string family, std::string desc, const ModelArgs& paper,
                        int64_t min_size, DenseNetConfig c) {
  ZooEntry e{.name = std::move(name), .family = std::move(family), .description = std::move(desc),
             .paper_args = paper, .min_image_size = min_size};
  e.make = [c](const ModelArgs& a) -> nn::ModulePtr {
    DenseNetConfig ci = c;
    ci.in_channels = a.in_channels;
    ci.num_classes = a.num_classes;
    ci.drop_rate = a.dropout.value_or(0.0);
    return std::make_shared<DenseNet>(ci);
  };
  return e;
}

ZooEntry vgg_entry(int depth, bool bn) {
  ZooEntry e{.name = str_cat("vgg", depth, bn ? "_bn" : ""), .family = "vgg",
             .description = str_cat("VGG-", depth, bn ? " with batch norm" : "", " (Simonyan & Zisserman 2015; torchvision)"),
             .paper_args = kImageNet, .min_image_size = 32};
  e.make = [depth, bn](const ModelArgs& a) -> nn::ModulePtr {
    return std::make_shared<VGG>(VGGConfig{.layers = vgg_layers(depth), .batch_norm = bn, .in_channels = a.in_channels,
                                           .num_classes = a.num_classes, .dropout = a.dropout.value_or(0.5)});
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
  z.push_back(preact_resnet(110, BlockKind::basic));
  z.push_back(preact_resnet(164, BlockKind::bottleneck));
  z.push_back(preact_resnet(1001, BlockKind::bottleneck));
  for (auto [d, k] : {std::pair<int64_t, int64_t>{16, 8}, {28, 10}, {40, 4}}) z.push_back(wide_resnet_cifar(d, k));
  z.push_back(resnext_cifar(8));
  z.push_back(resnext_cifar(16));
  // Huang et al. 2017 §3-4: three dense blocks; DenseNet starts with 16 channels, DenseNet-BC with 2k.
  z.push_back(densenet_entry("densenet40_k12", "densenet-cifar", "DenseNet (L=40, k=12) for 32x32 inputs (Huang et al. 2017)",
                             kCifar, 4, {.growth = 12, .blocks = {12, 12, 12}, .init_features = 16, .bn_size = 0,
                                         .compression = 1.0, .stem = StemKind::cifar, .drop_after_every_conv = true}));
  for (auto [depth, k] : {std::pair<int64_t, int64_t>{100, 12}, {190, 40}}) {
    const int64_t n = (depth - 4) / 6;
    z.push_back(densenet_entry(str_cat("densenet_bc", depth, "_k", k), "densenet-cifar",
                               str_cat("DenseNet-BC (L=", depth, ", k=", k, ") for 32x32 inputs (Huang et al. 2017)"), kCifar, 4,
                               {.growth = k, .blocks = {n, n, n}, .init_features = 2 * k, .bn_size = 4,
                                .compression = 0.5, .stem = StemKind::cifar, .drop_after_every_conv = true}));
  }
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
  // torchvision's DenseNet-121/161/169/201 (growth 32, or 48 with 96 initial features for 161).
  struct DSpec { int depth; int64_t k, init; std::vector<int64_t> blocks; };
  for (const DSpec& d : {DSpec{121, 32, 64, {6, 12, 24, 16}}, DSpec{161, 48, 96, {6, 12, 36, 24}},
                         DSpec{169, 32, 64, {6, 12, 32, 32}}, DSpec{201, 32, 64, {6, 12, 48, 32}}})
    z.push_back(densenet_entry(str_cat("densenet", d.depth), "densenet", str_cat("DenseNet-", d.depth, " (Huang et al. 2017; torchvision)"),
                               kImageNet, 29, {.growth = d.k, .blocks = d.blocks, .init_features = d.init}));
  for (int depth : {11, 13, 16, 19})
    for (bool bn : {false, true}) z.push_back(vgg_entry(depth, bn));
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
