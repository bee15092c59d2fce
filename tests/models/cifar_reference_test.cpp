// The CIFAR zoo models without a torchvision counterpart against their papers' reference code,
// re-expressed with torch.nn.functional in zoo_oracle.py (`cifar`): resin's weights (random, with
// randomised BN state) go through safetensors into the functional network, and the eval-mode
// logits must agree within 1e-4 relative. ONE Python process for all models.
#include <gtest/gtest.h>

#include <cstdio>

#include "resin/io/safetensors.h"
#include "resin/models/zoo.h"
#include "resin/resin.h"
#include "zoo_oracle.h"

namespace resin {
namespace {

TEST(ZooCifarReference, LogitsMatchReferenceDefinitions) {
  // resnet20: option A; resnet20_b: option B; resnext29: grouped bottlenecks with a 64-wide stem;
  // preact_resnet110: basic pre-activation units, option A; preact_resnet164: bottleneck units,
  // projections; wrn_16_8: widened basic units (dropout 0.3 must vanish in eval mode);
  // densenet40_k12: basic layers, no compression; densenet_bc100_k12: bottleneck + compression.
  const std::vector<std::string> names = {"resnet20",         "resnet20_b",       "resnext29_8x64d",
                                          "preact_resnet110", "preact_resnet164", "wrn_16_8",
                                          "densenet40_k12",   "densenet_bc100_k12"};
  constexpr double kTolerance = 1e-4;
  testing::TempDir dir;
  manual_seed(99);
  std::map<std::string, Tensor> logits;
  std::string args;
  for (const std::string& name : names) {
    const bool wrn = name.rfind("wrn", 0) == 0;
    auto m = models::create_model(name, {.in_channels = 3, .num_classes = 10, .image_size = 16,
                                         .dropout = wrn ? std::optional<double>(0.3) : std::nullopt});
    testing::randomise_batch_norm(*m);
    m->eval();
    Tensor x = randn({2, 3, 16, 16});
    {
      NoGradGuard ng;
      logits[name] = m->forward(x);
    }
    std::map<std::string, Tensor> state = m->state_dict();
    state["input"] = x;
    io::save_safetensors(dir.file("resin_" + name + ".safetensors"), state);
    args += " '" + name + "'";
  }
  const std::string err = testing::run_zoo_oracle("cifar '" + dir.path() + "'" + args, dir.file("log"));
  ASSERT_EQ(err, "");
  for (const std::string& name : names) {
    const Tensor want = io::load_safetensors(dir.file("ref_" + name + ".safetensors")).tensors.at("logits");
    const double e = testing::relative_error(logits[name], want);
    EXPECT_GT(testing::max_abs(want), 0.0) << name;
    EXPECT_LE(e, kTolerance) << name;
    std::printf("%-20s relative logit error vs the reference definition: %.1e\n", name.c_str(), e);
  }
}

}  // namespace
}  // namespace resin
