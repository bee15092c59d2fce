// bf16 autocast end to end: a small ResNet learns a synthetic task under autocast about as well as
// in f32, and `resin train --dtype bf16` writes its dtype and resumes bitwise-exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "resin/backend/backend.h"
#include "resin/backend/cpu/cpu_backend.h"
#include "resin/io/atomic_file.h"
#include "resin/resin.h"

using namespace resin;
namespace fs = std::filesystem;

namespace {

bool skip_without_bf16() {
  if (backend::bf16_compute_supported()) return false;
  std::printf("[ SKIPPED-ISA ] oneDNN reports %s: no native bf16\n", backend::cpu_isa_name().c_str());
  return true;
}

// 10 classes, each a fixed random 8x8 template; an image is its class's template plus noise.
struct Synthetic {
  Tensor x, labels;
};

Synthetic synthetic(int64_t n) {
  Generator g(7);
  const std::vector<double> templates = randn({10, 64}, {}, &g).to_vector();
  const std::vector<double> noise = randn({n, 64}, {}, &g).to_vector();
  std::vector<double> x(n * 64), labels(n);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<double>(i % 10);
    for (int64_t j = 0; j < 64; ++j) x[i * 64 + j] = templates[(i % 10) * 64 + j] + 0.8 * noise[i * 64 + j];
  }
  return {from_vector(x, {n, 1, 8, 8}).contiguous(MemoryFormat::channels_last),
          from_vector(labels, {n}, {.dtype = DType::i64})};
}

// Losses of `steps` SGD steps on the whole set, from the same initial weights.
std::vector<double> train_losses(DType compute, int steps) {
  manual_seed(3);
  auto model = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10, .image_size = 8});
  model->train();
  optim::Sgd opt(model->parameters(), 0.05, 0.0, {.momentum = 0.9});
  const Synthetic d = synthetic(64);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Tensor loss;
    {
      AutocastGuard autocast(compute);
      loss = cross_entropy(model->forward(d.x), d.labels);
    }
    loss.backward();
    opt.step();
    opt.zero_grad();
    losses.push_back(loss.item());
  }
  return losses;
}

TEST(AutocastTraining, SmallResnetLearnsLikeF32) {
  if (skip_without_bf16()) GTEST_SKIP();
  const int steps = 25;
  const std::vector<double> f32 = train_losses(DType::f32, steps);
  const int64_t before = backend::CpuBackend::cache_stats().bf16;
  const std::vector<double> bf16 = train_losses(DType::bf16, steps);
  EXPECT_GT(backend::CpuBackend::cache_stats().bf16, before + steps * 19 * 3)
      << "19 convolutions x 3 passes per step";
  // Same weights and data: the first loss differs only by bf16 rounding of the forward pass.
  EXPECT_NEAR(bf16[0], f32[0], 0.02 * f32[0]);
  EXPECT_GT(f32[0], 1.5);
  // Both learn (chance is ln 10 = 2.3), and bf16 ends up where f32 does.
  EXPECT_LT(f32.back(), 0.3 * f32[0]) << "f32 did not learn the task";
  EXPECT_LT(bf16.back(), 0.3 * bf16[0]) << "bf16 did not learn the task";
  EXPECT_NEAR(bf16.back(), f32.back(), 0.1 * f32[0]);
  for (double l : bf16) EXPECT_TRUE(std::isfinite(l));
}

TEST(AutocastTraining, TrainerRecordsTheDtypeAndResumesExactly) {
  if (skip_without_bf16()) GTEST_SKIP();
  const fs::path base = fs::temp_directory_path() / ("resin_autocast_" + std::to_string(getpid()));
  fs::remove_all(base);
  auto config = [&](const char* name) {
    train::TrainConfig c;
    c.out = (base / name).string();
    c.dtype = "bf16";
    c.channels_last = true;
    c.batch_size = 32;
    c.train_subset = 320;
    c.test_subset = 100;
    c.epochs = 1;
    c.threads = 2;
    c.progress = 0;
    return c;
  };
  train::run_training(config("straight"));
  train::TrainConfig b = config("split");
  b.checkpoint_every = 4;
  b.max_steps = 6;  // stopped after step 6; the last checkpoint is from step 4
  train::run_training(b);
  b.max_steps = 0;
  b.resume = true;
  train::run_training(b);
  EXPECT_TRUE(io::read_file((base / "straight/weights.safetensors").string()) ==
              io::read_file((base / "split/weights.safetensors").string()))
      << "a resumed bf16 run differs from the uninterrupted one";
  EXPECT_NE(io::read_file((base / "straight/config.json").string()).find("\"dtype\": \"bf16\""),
            std::string::npos);
  fs::remove_all(base);
}

}  // namespace
