// A small ResNet trained 20 SGD steps in resin and in PyTorch from the same weights, on the same
// batches, with the same settings, must end at the same weights (f64, tight tolerance).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "resin/io/safetensors.h"
#include "resin/models/resnet.h"
#include "resin/optim/optim.h"
#include "resin/resin.h"

using namespace resin;

TEST(TrainParity, TwentySgdStepsMatchPyTorch) {
  const int64_t kSteps = 20;
  manual_seed(7);
  models::ResNet net({.block = models::BlockKind::basic, .layers = {1, 1}, .widths = {8, 16},
                      .stem = models::StemKind::cifar, .in_channels = 1, .num_classes = 10});
  net.to(DType::f64);
  std::map<std::string, Tensor> file;
  for (auto& [n, t] : net.state_dict()) file["init." + n] = t.clone();
  Generator g(11);
  for (int64_t i = 0; i < kSteps; ++i) {
    file["x." + std::to_string(i)] = randn({6, 1, 10, 10}, {.dtype = DType::f64}, &g);
    file["y." + std::to_string(i)] = randint(0, 10, {6}, {.dtype = DType::i64}, &g);
  }
  file["steps"] = full(Shape{}, kSteps, {.dtype = DType::i64});

  const auto dir = std::filesystem::temp_directory_path() / ("resin_train_parity_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string in = (dir / "in.safetensors").string(), out = (dir / "out.safetensors").string();
  io::save_safetensors(in, file);
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/train/torch_train.py";
  const int rc = std::system(("/usr/bin/python3 '" + script + "' '" + in + "' '" + out + "'").c_str());
  ASSERT_EQ(rc, 0) << "PyTorch training failed; is python3-torch installed? Run scripts/install-deps.sh";

  optim::Sgd opt(optim::weight_decay_param_groups(net.named_parameters(), 0.05, 5e-4), {.momentum = 0.9, .nesterov = true});
  net.train();
  for (int64_t i = 0; i < kSteps; ++i) {
    Tensor loss = cross_entropy(net.forward(file["x." + std::to_string(i)]), file["y." + std::to_string(i)]);
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  auto expected = io::load_safetensors(out).tensors;
  int compared = 0;
  for (auto& [name, t] : net.state_dict()) {
    ASSERT_TRUE(expected.count(name)) << name << " missing from torch's state_dict";
    const auto a = t.to_vector(), b = expected[name].to_vector();
    ASSERT_EQ(a.size(), b.size()) << name;
    for (size_t k = 0; k < a.size(); ++k)
      ASSERT_NEAR(a[k], b[k], 1e-9 * (1 + std::abs(b[k]))) << name << "[" << k << "]";
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(expected.size()));
  // The weights must have moved (otherwise the comparison proves nothing).
  EXPECT_GT(std::abs(net.state_dict()["fc.weight"].to_vector()[0] - file["init.fc.weight"].to_vector()[0]), 1e-6);
  std::filesystem::remove_all(dir);
}
