// `resin train --device`: a device the build or machine cannot use is refused with a clear message
// before anything is written (the GPU run itself is tests/gpu's).
#include <gtest/gtest.h>

#include <filesystem>

#include "resin/core/cuda.h"
#include "resin/core/error.h"
#include "resin/train/trainer.h"

using namespace resin;
namespace fs = std::filesystem;

TEST(TrainerDevice, UnusableDeviceFailsBeforeWritingAnything) {
  const fs::path dir = fs::temp_directory_path() / ("resin_trainer_device_" + std::to_string(getpid()));
  fs::remove_all(dir);
  train::TrainConfig c;
  c.out = dir.string();
  c.train_subset = 256;
  c.test_subset = 256;
  struct Case {
    std::string device, message;
  };
  std::vector<Case> cases = {{"tpu", "unknown device 'tpu' (expected cpu, cuda or cuda:N;"}};
  if (!cuda::is_available())
    cases.push_back({"cuda", cuda::built() ? "no CUDA device" : "resin was built without CUDA"});
  else
    cases.push_back({"cuda:" + std::to_string(cuda::device_count()), "does not exist"});
  for (const Case& k : cases) {
    c.device = k.device;
    try {
      train::run_training(c);
      ADD_FAILURE() << k.device << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(k.message), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir)) << "--device " << k.device << " created the output directory";
  }
}

// The trainer on the placement-check device cpu:1 (core/device.h), which stands in for a GPU: the
// model, batches, labels, optimizer state and the resumed checkpoint must all be moved there (a tensor
// left on the CPU is a device-mismatch error), and since cpu:1 computes with the CPU's kernels the
// run, its resume and the evaluation of its checkpoint give the CPU run's numbers exactly.
TEST(TrainerDevice, TrainsResumesAndEvaluatesOnAnotherDeviceWithTheCpusNumbers) {
  const fs::path root = fs::temp_directory_path() / ("resin_trainer_cpu1_" + std::to_string(getpid()));
  fs::remove_all(root);
  auto run = [&](const std::string& device) {
    train::TrainConfig c;
    c.out = (root / device).string();
    c.device = device;
    c.train_subset = 512;
    c.test_subset = 256;
    c.batch_size = 64;
    c.epochs = 1;
    c.threads = 1;
    c.progress = 0;
    const train::TrainResult first = train::run_training(c);
    c.epochs = 2;
    c.resume = true;
    const train::TrainResult resumed = train::run_training(c);
    const train::EvalResult e =
        train::evaluate_file((root / device / "last.ckpt").string(), "fashion-mnist", "", "", 500, 1, device);
    return std::vector<double>{
        first.test_loss, resumed.test_loss, resumed.test_top1, static_cast<double>(resumed.steps), e.loss,
        e.top1};
  };
  const auto on_cpu = run("cpu"), moved = run("cpu:1");
  EXPECT_EQ(moved, on_cpu);
  EXPECT_EQ(moved[3], 16);  // two epochs of 8 steps: the resume continued the run
  fs::remove_all(root);
}
