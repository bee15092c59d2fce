// The trainer with --device cuda (what `resin train` / `resin eval` run): the same recipe on the CPU
// and on the GPU from the same seed and data, trained, resumed from its checkpoint and evaluated.
// Unlike the placement check on cpu:1 (tests/train/device_flag_test.cpp), this runs the CUDA paths
// themselves: the fused SGD kernel, the all-finite check, checkpoints written from device tensors,
// optimizer state loaded back onto the device.
#include <cmath>

#include "../io/temp_dir.h"
#include "../support/fake_fashion_mnist.h"
#include "gpu_util.h"
#include "resin/train/trainer.h"

namespace resin::test {
namespace {

struct DeviceRun {
  double first_loss, resumed_loss, resumed_top1, steps, eval_loss, eval_top1, cross_eval_loss;
};

TEST(CudaTrainer, TrainsResumesAndEvaluatesLikeTheCpu) {
  RESIN_REQUIRE_GPU();
  resin::testing::TempDir dir;
  const std::string data = write_fake_fashion_mnist(dir.file("fmnist"), 256, 128);
  auto run = [&](const std::string& device, const std::string& other) {
    train::TrainConfig c;
    c.data_dir = data;
    c.out = dir.file(device);
    c.device = device;
    c.batch_size = 64;
    c.epochs = 1;
    c.threads = 1;
    c.progress = 0;
    const train::TrainResult first = train::run_training(c);
    c.epochs = 2;
    c.resume = true;
    const train::TrainResult resumed = train::run_training(c);
    const std::string ckpt = dir.file(device + "/last.ckpt");
    const train::EvalResult e = train::evaluate_file(ckpt, "fashion-mnist", data, "", 128, 1, device);
    // This run's checkpoint evaluated on the other device: the inference path alone.
    const train::EvalResult x = train::evaluate_file(ckpt, "fashion-mnist", data, "", 128, 1, other);
    return DeviceRun{first.test_loss,
                     resumed.test_loss,
                     resumed.test_top1,
                     static_cast<double>(resumed.steps),
                     e.loss,
                     e.top1,
                     x.loss};
  };
  const DeviceRun cpu = run("cpu", "cuda"), gpu = run("cuda", "cpu");
  EXPECT_EQ(gpu.steps, 8);  // two epochs of 4 steps: the resume continued the run
  EXPECT_EQ(cpu.steps, 8);
  // f32 on both sides, different summation orders: a few steps keep the runs close.
  auto near = [](double a, double b) { return std::abs(a - b) <= 2e-3 * (1 + std::abs(b)); };
  EXPECT_PRED2(near, gpu.first_loss, cpu.first_loss);
  EXPECT_PRED2(near, gpu.resumed_loss, cpu.resumed_loss);
  EXPECT_PRED2(near, gpu.eval_loss, cpu.eval_loss);
  EXPECT_NEAR(gpu.resumed_top1, cpu.resumed_top1, 100.0 / 128 + 1e-9);  // at most one test image
  EXPECT_NEAR(gpu.eval_top1, cpu.eval_top1, 100.0 / 128 + 1e-9);
  // The same weights evaluated on either device agree to f32 rounding.
  EXPECT_NEAR(cpu.cross_eval_loss, cpu.eval_loss, 1e-4 * (1 + cpu.eval_loss));
  EXPECT_NEAR(gpu.cross_eval_loss, gpu.eval_loss, 1e-4 * (1 + gpu.eval_loss));
  EXPECT_LT(cpu.resumed_loss, cpu.first_loss) << "the CPU run did not learn, so the comparison proves little";
}

}  // namespace
}  // namespace resin::test
