// The zoo against torchvision (Debian's python3-torchvision, driven by zoo_oracle.py):
// parameter counts of every torchvision-backed model, and weight interchange in both directions
// through safetensors with the same eval-mode logits. Each test starts ONE Python process.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "resin/io/json.h"
#include "resin/io/safetensors.h"
#include "resin/models/zoo.h"
#include "resin/nn/init.h"
#include "resin/nn/layers.h"
#include "resin/resin.h"
#include "zoo_oracle.h"

namespace resin {
namespace {

using testing::TempDir;

// Every zoo member that torchvision defines (plainN: resnetN without its downsample projections).
bool torchvision_backed(const models::ZooEntry& e) {
  static const std::vector<std::string> kFamilies = {"resnet", "plain", "wide_resnet", "resnext", "densenet", "vgg"};
  return std::find(kFamilies.begin(), kFamilies.end(), e.family) != kFamilies.end();
}

TEST(ZooTorchvision, ParameterCountsEqualTorchvision) {
  std::vector<std::string> names;
  std::string args;
  for (const auto& e : models::zoo())
    if (torchvision_backed(e)) {
      names.push_back(e.name);
      args += " '" + e.name + "'";
    }
  ASSERT_GE(names.size(), 27u);  // 5 resnet + 5 plain + 2 wide + 3 resnext + 4 densenet + 8 vgg
  TempDir dir;
  const std::string out = dir.file("counts.json");
  const std::string err = testing::run_zoo_oracle("counts '" + out + "'" + args, dir.file("log"));
  ASSERT_EQ(err, "");
  const io::JsonValue counts = io::parse_json(io::read_file(out), out);
  for (const std::string& name : names) {
    const io::JsonValue* want = counts.find(name);
    ASSERT_NE(want, nullptr) << name;
    const models::ZooEntry& e = models::zoo_entry(name);
    nn::init::SkipInitGuard shapes_only;  // counting needs no random draws
    EXPECT_EQ(e.make(e.paper_args)->parameter_count(), want->integer) << name;
  }
}

// 64x64 is the smallest size at which every listed model is valid and non-trivial (VGG's
// adaptive pool then upsamples 2x2 to 7x7, DenseNet-121 ends at 2x2). Batch 2, eval mode, f32.
TEST(ZooTorchvision, WeightInterchangeBothWaysSameLogits) {
  const std::vector<std::string> names = {"resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
                                          "densenet121", "vgg11_bn"};
  constexpr double kTolerance = 1e-4;
  TempDir dir;
  manual_seed(2024);
  std::map<std::string, nn::ModulePtr> models;
  std::map<std::string, Tensor> resin_logits;
  std::string args;
  for (const std::string& name : names) {
    auto m = models::create_model(name, {.in_channels = 3, .num_classes = 1000, .image_size = 64});
    testing::randomise_batch_norm(*m);
    m->eval();
    Tensor x = randn({2, 3, 64, 64});
    {
      NoGradGuard ng;
      resin_logits[name] = m->forward(x);
    }
    std::map<std::string, Tensor> state = m->state_dict();
    state["input"] = x;
    io::save_safetensors(dir.file("resin_" + name + ".safetensors"), state);
    models[name] = m;
    args += " '" + name + "'";
  }
  const std::string err = testing::run_zoo_oracle("interchange '" + dir.path() + "'" + args, dir.file("log"));
  ASSERT_EQ(err, "");
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    // resin -> safetensors -> torchvision
    const Tensor tv_on_resin = io::load_safetensors(dir.file("tv_on_resin_" + name + ".safetensors")).tensors.at("logits");
    const double to_tv = testing::relative_error(resin_logits[name], tv_on_resin);
    EXPECT_LE(to_tv, kTolerance) << "resin weights in torchvision";
    // torchvision -> safetensors -> resin (strict: every key present, no extra keys, same shapes)
    auto file = io::load_safetensors(dir.file("tv_" + name + ".safetensors"));
    const Tensor x = file.tensors.at("input"), want = file.tensors.at("logits");
    file.tensors.erase("input");
    file.tensors.erase("logits");
    auto& m = models[name];
    const nn::LoadReport report = m->load_state_dict(file.tensors, /*strict=*/true);
    ASSERT_TRUE(report.ok()) << report.str();
    NoGradGuard ng;
    const Tensor got = m->forward(x);
    EXPECT_GT(testing::max_abs(want), 0.0);
    const double from_tv = testing::relative_error(got, want);
    EXPECT_LE(from_tv, kTolerance) << "torchvision weights in resin";
    std::printf("%-16s relative logit error: resin->torchvision %.1e, torchvision->resin %.1e (max |logit| %.3g)\n",
                name.c_str(), to_tv, from_tv, testing::max_abs(want));
  }
}

}  // namespace
}  // namespace resin
