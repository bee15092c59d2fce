#include "resin/models/zoo.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "../io/temp_dir.h"
#include "resin/blocks/preact_blocks.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/models/densenet.h"
#include "resin/models/resnet.h"
#include "resin/models/vgg.h"
#include "resin/nn/init.h"
#include "resin/resin.h"

using namespace resin;

namespace {

// Counts need shapes only (SkipInitGuard: no random draws).
int64_t count(const std::string& name) {
  nn::init::SkipInitGuard shapes_only;
  return models::create_model(name, {})->parameter_count();
}

// Parameters outside BatchNorm layers (the convention of He et al. 2016's table).
int64_t count_without_bn(const std::string& name) {
  nn::init::SkipInitGuard shapes_only;
  auto m = models::create_model(name, {});
  int64_t n = m->parameter_count();
  for (auto& [_, mod] : m->named_modules())
    if (std::dynamic_pointer_cast<nn::BatchNorm>(mod))
      for (auto& [__, p] : mod->own_parameters()) n -= p.numel();
  return n;
}

// The papers print millions with one decimal, some rounded and some truncated: the exact count
// must lie within 0.1M of the printed figure.
void expect_paper_millions(int64_t n, double paper, const std::string& name) {
  EXPECT_LT(std::abs(static_cast<double>(n) / 1e6 - paper), 0.1) << name << ": " << n << " vs the paper's " << paper << "M";
}

}  // namespace

// He et al. 2015, Table 6 (CIFAR-10, #params column; BN parameters counted). Exact counts are those
// of the paper's architecture: option A shortcuts add nothing, option B adds 1x1 conv + BN twice.
TEST(Zoo, CifarResNetParameterCounts) {
  struct Row { int depth; int64_t a, b; double paper; };
  for (const Row& r : {Row{20, 269722, 272474, 0.27}, Row{32, 464154, 466906, 0.46}, Row{44, 658586, 661338, 0.66},
                       Row{56, 853018, 855770, 0.85}, Row{110, 1727962, 1730714, 1.7}, Row{1202, 19421274, 19424026, 19.4}}) {
    const std::string name = "resnet" + std::to_string(r.depth);
    EXPECT_EQ(count(name), r.a) << name;
    EXPECT_EQ(count(name + "_b"), r.b) << name << "_b";
    EXPECT_LT(std::abs(r.a / 1e6 - r.paper), r.paper < 1 ? 0.01 : 0.1) << name;
    if (r.depth != 1202) {
      EXPECT_EQ(count("plain" + std::to_string(r.depth)), r.a) << "plain" << r.depth;
    }
  }
}

// He et al. 2016 ("Identity Mappings"), Table 4 (#params): ResNet-110 1.7M, ResNet-164 1.7M,
// ResNet-1001 10.2M. The exact counts follow the authors' code (resnet-1k-layers: no conv biases,
// projection shortcuts without BN, final BN); the paper's figures match them without the BN
// parameters (1001: 10,178,490 -> 10.2M; with BN it would be 10.3M).
TEST(Zoo, PreActResNetParameterCounts) {
  EXPECT_EQ(count("preact_resnet110"), 1727962);
  EXPECT_EQ(count("preact_resnet164"), 1703258);
  EXPECT_EQ(count("preact_resnet1001"), 10327706);
  EXPECT_EQ(count_without_bn("preact_resnet164"), 1679034);
  EXPECT_EQ(count_without_bn("preact_resnet1001"), 10178490);
  expect_paper_millions(count_without_bn("preact_resnet110"), 1.7, "preact_resnet110");
  expect_paper_millions(count_without_bn("preact_resnet164"), 1.7, "preact_resnet164");
  expect_paper_millions(count_without_bn("preact_resnet1001"), 10.2, "preact_resnet1001");
}

// Zagoruyko & Komodakis 2016, Table 4 (#params): WRN-16-8 11.0M, WRN-28-10 36.5M, WRN-40-4 8.9M.
TEST(Zoo, WideResNetParameterCounts) {
  EXPECT_EQ(count("wrn_16_8"), 10961370);
  EXPECT_EQ(count("wrn_28_10"), 36479194);
  EXPECT_EQ(count("wrn_40_4"), 8949210);
  expect_paper_millions(count("wrn_16_8"), 11.0, "wrn_16_8");
  expect_paper_millions(count("wrn_28_10"), 36.5, "wrn_28_10");
  expect_paper_millions(count("wrn_40_4"), 8.9, "wrn_40_4");
  // Dropout adds no parameters.
  EXPECT_EQ(models::create_model("wrn_16_8", {.dropout = 0.3})->parameter_count(), 10961370);
}

// Xie et al. 2017, Table 7 (CIFAR, #params): ResNeXt-29 8x64d 34.4M, 16x64d 68.1M (the paper
// truncates: 68,155,210).
TEST(Zoo, ResNeXt29ParameterCounts) {
  EXPECT_EQ(count("resnext29_8x64d"), 34426698);
  EXPECT_EQ(count("resnext29_16x64d"), 68155210);
  expect_paper_millions(count("resnext29_8x64d"), 34.4, "resnext29_8x64d");
  expect_paper_millions(count("resnext29_16x64d"), 68.1, "resnext29_16x64d");
}

// Huang et al. 2017, Table 2 (Params): DenseNet (L=40, k=12) 1.0M, DenseNet-BC (L=100, k=12)
// 0.8M, DenseNet-BC (L=190, k=40) 25.6M. DenseNet starts with 16 channels, -BC with 2k (§4.1).
TEST(Zoo, CifarDenseNetParameterCounts) {
  EXPECT_EQ(count("densenet40_k12"), 1019722);
  EXPECT_EQ(count("densenet_bc100_k12"), 769162);
  EXPECT_EQ(count("densenet_bc190_k40"), 25624430);
  expect_paper_millions(count("densenet40_k12"), 1.0, "densenet40_k12");
  expect_paper_millions(count("densenet_bc100_k12"), 0.8, "densenet_bc100_k12");
  expect_paper_millions(count("densenet_bc190_k40"), 25.6, "densenet_bc190_k40");
}

TEST(Zoo, UnknownNameSuggests) {
  try {
    models::create_model("resnet21", {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet20"), std::string::npos) << e.what();
  }
}

TEST(Zoo, NamesAreUniqueAndFamiliesKnown) {
  std::set<std::string> names;
  const std::set<std::string> families = {"resnet-cifar", "plain-cifar", "preact-resnet-cifar", "wrn-cifar",
                                          "resnext-cifar", "densenet-cifar", "resnet", "plain", "wide_resnet",
                                          "resnext", "densenet", "vgg", "lab-mlp", "lab-cnn", "lab-transformer"};
  for (const auto& e : models::zoo()) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate " << e.name;
    EXPECT_TRUE(families.count(e.family)) << e.name << ": " << e.family;
    EXPECT_FALSE(e.description.empty()) << e.name;
  }
  for (const char* n : {"resnet18", "resnet152", "plain34", "wide_resnet101_2", "resnext101_64x4d", "densenet161",
                        "vgg19_bn", "vgg11", "resnet1202", "resnet56_b", "plain110", "preact_resnet1001", "wrn_28_10",
                        "resnext29_16x64d", "densenet_bc190_k40"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(Zoo, DropoutOnlyWhereDefined) {
  EXPECT_THROW(models::create_model("resnet20", {.dropout = 0.2}), Error);
  EXPECT_THROW(models::create_model("resnext29_8x64d", {.dropout = 0.2}), Error);
  EXPECT_NO_THROW(models::create_model("resnet20", {.dropout = 0.0}));
  // WRN: dropout between the convs is active in training only.
  manual_seed(3);
  auto m = models::create_model("wrn_16_8", {.num_classes = 10, .dropout = 0.5});
  Tensor x = randn({2, 3, 8, 8});
  m->eval();
  EXPECT_EQ(m->forward(x).to_vector(), m->forward(x).to_vector());
  m->train();
  EXPECT_NE(m->forward(x).to_vector(), m->forward(x).to_vector());
  bool has_dropout = false;
  for (auto& [name, mod] : m->named_modules()) has_dropout |= name == "layer1.0.dropout";
  EXPECT_TRUE(has_dropout);
}

// Pre-activation unit: y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut, where the first
// unit of a stage feeds relu(bn1(x)) to its shortcut and the others feed x.
TEST(Zoo, PreActBasicBlockMatchesDefinition) {
  manual_seed(5);
  for (bool shared : {false, true}) {
    blocks::PreActBasicBlock b({.in = 4, .planes = 4, .stride = 1, .shared_preact = shared});
    b.train();
    Tensor x = randn({2, 4, 5, 5});
    auto p = b.state_dict();
    auto bn = [&](const Tensor& h, const std::string& n) {
      return batch_norm(h, Tensor(), Tensor(), p.at(n + ".weight"), p.at(n + ".bias"), true);
    };
    Tensor a = relu(bn(x, "bn1"));
    Tensor f = conv2d(relu(bn(conv2d(a, p.at("conv1.weight"), {}, {.padding = {1, 1}}), "bn2")), p.at("conv2.weight"),
                      {}, {.padding = {1, 1}});
    Tensor want = add(f, shared ? a : x);
    const auto got = b.forward(x).to_vector(), w = want.to_vector();
    ASSERT_EQ(got.size(), w.size());
    for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(got[i], w[i], 1e-5) << "shared=" << shared << " i=" << i;
  }
  // A projection shortcut is a bare 1x1 conv (no BN) on the pre-activated input.
  blocks::PreActBasicBlock proj({.in = 4, .planes = 8, .stride = 2});
  std::vector<std::string> names;
  for (auto& [n, _] : proj.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"bn1.weight", "bn1.bias", "conv1.weight", "bn2.weight", "bn2.bias",
                                             "conv2.weight", "downsample.0.weight"}));
}

TEST(Zoo, PreActNetworkStructure) {
  nn::init::SkipInitGuard shapes_only;
  auto m = models::create_model("preact_resnet164", {});
  auto sd = m->state_dict();
  EXPECT_FALSE(sd.count("bn1.weight"));  // no stem BN: each unit normalises its own input
  EXPECT_TRUE(sd.count("bn_final.weight"));
  EXPECT_EQ(sd.at("conv1.weight").shape(), (Shape{16, 3, 3, 3}));
  EXPECT_EQ(sd.at("layer1.0.downsample.0.weight").shape(), (Shape{64, 16, 1, 1}));
  EXPECT_EQ(sd.at("layer3.17.conv3.weight").shape(), (Shape{256, 64, 1, 1}));
  EXPECT_EQ(sd.at("fc.weight").shape(), (Shape{10, 256}));
  auto wrn = models::create_model("wrn_28_10", {})->state_dict();
  EXPECT_EQ(wrn.at("layer1.0.conv1.weight").shape(), (Shape{160, 16, 3, 3}));
  EXPECT_EQ(wrn.at("layer3.3.conv2.weight").shape(), (Shape{640, 640, 3, 3}));
  auto rx = models::create_model("resnext29_8x64d", {})->state_dict();
  EXPECT_EQ(rx.at("layer1.0.conv2.weight").shape(), (Shape{512, 64, 3, 3}));  // 8 groups of 64
  EXPECT_EQ(rx.at("layer3.2.conv3.weight").shape(), (Shape{1024, 2048, 1, 1}));
}

TEST(Zoo, DenseNetStructure) {
  nn::init::SkipInitGuard shapes_only;
  auto bc = models::create_model("densenet_bc100_k12", {})->state_dict();
  EXPECT_EQ(bc.at("features.conv0.weight").shape(), (Shape{24, 3, 3, 3}));
  EXPECT_FALSE(bc.count("features.norm0.weight"));
  EXPECT_EQ(bc.at("features.denseblock1.denselayer16.conv1.weight").shape(), (Shape{48, 24 + 15 * 12, 1, 1}));
  EXPECT_EQ(bc.at("features.transition1.conv.weight").shape(), (Shape{108, 216, 1, 1}));  // compression 0.5
  EXPECT_EQ(bc.at("classifier.weight").shape(), (Shape{10, 342}));
  auto dn = models::create_model("densenet40_k12", {})->state_dict();
  EXPECT_EQ(dn.at("features.denseblock1.denselayer1.conv1.weight").shape(), (Shape{12, 16, 3, 3}));
  EXPECT_FALSE(dn.count("features.denseblock1.denselayer1.conv2.weight"));
  EXPECT_EQ(dn.at("features.transition2.conv.weight").shape(), (Shape{304, 304, 1, 1}));  // no compression
}

// The zoo's arguments: Fashion-MNIST (1x28x28, 10 classes) for one member of every family that
// accepts 28x28 inputs. VGG (five 2x2 pools) needs 32x32 and the ImageNet DenseNets 29x29: their
// entries say so, one pixel less throws, and the stated minimum works.
TEST(Zoo, FashionMnistArguments) {
  manual_seed(11);
  Tensor x = randn({2, 1, 28, 28});
  for (const char* name : {"resnet20", "plain20", "preact_resnet110", "wrn_16_8", "resnext29_8x64d", "densenet40_k12",
                           "resnet18", "plain18", "resnext50_32x4d", "wide_resnet50_2"}) {
    auto m = models::create_model(name, {.in_channels = 1, .num_classes = 10, .image_size = 28});
    EXPECT_EQ(m->forward(x).shape(), (Shape{2, 10})) << name;
  }
  for (auto [name, min] : {std::pair<const char*, int64_t>{"vgg11", 32}, {"densenet121", 29}, {"densenet40_k12", 4}}) {
    EXPECT_EQ(models::zoo_entry(name).min_image_size, min) << name;
    auto m = models::create_model(name, {.in_channels = 1, .num_classes = 10, .image_size = min});
    EXPECT_THROW(m->forward(randn({2, 1, min - 1, min - 1})), Error) << name;
    EXPECT_EQ(m->forward(randn({2, 1, min, min})).shape(), (Shape{2, 10})) << name;
  }
  auto dn = std::dynamic_pointer_cast<models::DenseNet>(models::create_model("densenet121", {}));
  ASSERT_TRUE(dn);
  EXPECT_EQ(dn->min_input_size(), 29);
}

TEST(Zoo, MacsOfResNet20) {
  // By hand: stem 3*16*9*32^2, stage 1 6*16*16*9*32^2, stage 2 (16*32 + 5*32*32)*9*16^2,
  // stage 3 (32*64 + 5*64*64)*9*8^2, fc 64*10; option-A shortcuts and BN add no MACs.
  auto m = models::create_model("resnet20", {});
  EXPECT_EQ(models::count_macs(*m, 3, 32), 40'551'040);
}
