// The trained experiments' helper (lab/experiments/lab_training.h) and one trained experiment end to end
// on a tiny synthetic Fashion-MNIST (IDX files written here), so the test takes seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../io/temp_dir.h"
#include "../support/fake_fashion_mnist.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/models/lab_models.h"
#include "resin/ops/ops.h"

using namespace resin;
using namespace resin::lab;

namespace {

// A Fashion-MNIST directory in `dir` with train_n training and 500 test images.
std::string write_fake_fashion_mnist(const resin::testing::TempDir& dir, uint32_t train_n) {
  return resin::test::write_fake_fashion_mnist(dir.file("fmnist"), train_n);
}

LabTrainingData synthetic_data(int64_t n) {
  manual_seed(7);
  LabTrainingData d;
  d.train_x = randn({n, 1, 4, 4});
  d.train_y = randint(0, 3, {n});
  d.fit_x = d.train_x, d.fit_y = d.train_y;
  d.test_x = randn({64, 1, 4, 4});
  d.test_y = randint(0, 3, {64});
  return d;
}

std::shared_ptr<models::LabNet> tiny_net() {
  return models::make_res_mlp({.in = 16, .width = 8, .blocks = 2, .classes = 3});
}

}  // namespace

TEST(LabTraining, StratifiedOrderDealsClassesRoundRobin) {
  Tensor y = from_data<int64_t>({0, 0, 0, 1, 1, 1, 2, 2, 2, 2}, {10});
  const auto o = stratified_order(y, 5);
  ASSERT_EQ(o.size(), 10u);
  const auto lab = y.values<int64_t>();
  for (size_t i = 0; i < 9; ++i) EXPECT_EQ(lab[static_cast<size_t>(o[i])], static_cast<int64_t>(i % 3)) << i;
  std::vector<int64_t> sorted = o;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(stratified_order(y, 5), o);
  EXPECT_NE(stratified_order(y, 6), o);
}

TEST(LabTraining, GatherRowsAndSchedules) {
  Tensor x = arange(0, 12).reshape({4, 3});
  EXPECT_EQ(gather_rows(x, {3, 1, 0}, 0, 2).to_vector(), (std::vector<double>{9, 10, 11, 3, 4, 5}));
  EXPECT_THROW(gather_rows(x, {4}, 0, 1), Error);
  TrainConfig c;  // step: ×0.1 at 50% and 75%
  EXPECT_DOUBLE_EQ(lr_factor(c, 49, 10, 100), 1.0);
  EXPECT_NEAR(lr_factor(c, 50, 10, 100), 0.1, 1e-15);
  EXPECT_NEAR(lr_factor(c, 75, 10, 100), 0.01, 1e-15);
  c.schedule = Schedule::exp_epoch, c.gamma = 0.5;
  EXPECT_DOUBLE_EQ(lr_factor(c, 25, 10, 100), 0.25);
  c.schedule = Schedule::inv_sqrt, c.decay_start = 4, c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(lr_factor(c, 0, 10, 100), 0.25);  // linear warm-up
  EXPECT_DOUBLE_EQ(lr_factor(c, 3, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(c, 15, 10, 100), 0.5);  // sqrt(4/16)
  c.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(lr_factor(c, 0, 10, 100), 1.0);  // no warm-up: the same decay
}

TEST(LabTraining, DeterministicGivenTheSeedAndMeasuresInEvalMode) {
  const LabTrainingData d = synthetic_data(200);
  auto run = [&](uint64_t seed) {
    manual_seed(seed);
    auto net = tiny_net();
    return train_classifier(*net, d, {.epochs = 3, .batch = 32, .lr = 0.05, .seed = seed, .eval_each_epoch = true});
  };
  const TrainResult a = run(1000), b = run(1000), c = run(2000);
  EXPECT_EQ(a.step_loss, b.step_loss);
  EXPECT_EQ(a.fit_loss, b.fit_loss);
  EXPECT_NE(a.step_loss, c.step_loss);
  EXPECT_EQ(a.steps, 3 * 7);
  ASSERT_EQ(a.curve.size(), 3u);
  EXPECT_EQ(a.curve.back().fit_loss, a.fit_loss);  // the last epoch's evaluation is the final one
  EXPECT_FALSE(a.diverged);
  EXPECT_TRUE(std::isfinite(a.test_error));
  // The fit loss is the eval-mode loss of the trained model, not the running minibatch average.
  manual_seed(1000);
  auto net = tiny_net();
  train_classifier(*net, d, {.epochs = 3, .batch = 32, .lr = 0.05, .seed = 1000});
  net->eval();
  const double direct = cross_entropy(net->forward(d.fit_x), d.fit_y).item();
  EXPECT_NEAR(direct, a.fit_loss, 1e-5);
}

// The convolutional lab net (E1's full-mode CNN cost probe) through the training helper on cpu:1:
// the same step losses and measurements as on the CPU.
TEST(LabTraining, ConvolutionalNetTrainsOnAnotherDeviceLikeOnTheCpu) {
  manual_seed(5);
  LabTrainingData d;
  d.train_x = randn({48, 1, 8, 8}), d.train_y = randint(0, 10, {48});
  d.fit_x = d.train_x, d.fit_y = d.train_y, d.test_x = d.train_x, d.test_y = d.train_y;
  auto run = [&](Device dev) {
    manual_seed(9);
    auto net = models::make_res_cnn({.n = 1, .width = 4});
    LabTrainingData on = d;
    on.device = dev;
    const TrainResult t = train_classifier(*net, on, {.epochs = 2, .batch = 16, .lr = 0.05, .seed = 3});
    EXPECT_EQ(net->device(), dev);
    return std::make_pair(t.step_loss, std::vector<double>{t.fit_loss, t.test_error});
  };
  EXPECT_EQ(run(Device::placement_check()), run(Device::cpu()));
}

TEST(LabTraining, DivergenceIsReportedNotThrown) {
  const LabTrainingData d = synthetic_data(200);
  manual_seed(3);
  auto net = models::make_res_mlp({.in = 16, .width = 8, .blocks = 30, .classes = 3, .norm = false});
  he_normal_init(*net, true);
  for (auto& p : net->parameters()) p.detach().data<float>()[0] = INFINITY;  // poison every tensor
  const TrainResult t = train_classifier(*net, d, {.epochs = 2, .batch = 32, .lr = 0.1, .seed = 1});
  EXPECT_TRUE(t.diverged);
  EXPECT_EQ(t.diverged_at, 1);
  EXPECT_EQ(t.steps, 0);
}

TEST(LabTraining, TrainedExperimentEndToEndOnTinyData) {
  resin::testing::TempDir dir;
  const std::string data = write_fake_fashion_mnist(dir, 3000);
  const Experiment& e = find_experiment("e10b-cardinality");
  EXPECT_TRUE(e.trains);
  Context ctx{.out_dir = dir.file("out"), .quick = true, .threads = 1, .fashion_mnist = data,
              .command = "resin lab e10b-cardinality --quick"};
  const RunSummary s = run_experiment(e, ctx);
  ASSERT_EQ(s.judgements.size(), e.criteria.size());
  for (const Judgement& j : s.judgements) {
    EXPECT_NE(j.measured, "not measured in this run") << j.id;
    EXPECT_FALSE(j.measured.empty()) << j.id;
  }
  for (const char* f : {"report.md", "metrics.json", "runs.csv", "train_loss_vs_cardinality.svg"})
    EXPECT_TRUE(std::filesystem::exists(ctx.out_dir + "/" + f)) << f;
  const std::string md = io::read_file(ctx.out_dir + "/report.md");
  for (const char* want : {"quick protocol", "Seeds: 1000", "resin lab e10b-cardinality --quick", "subset 3000"})
    EXPECT_NE(md.find(want), std::string::npos) << want;
  const io::JsonValue j = io::parse_json(io::read_file(ctx.out_dir + "/metrics.json"), "metrics.json");
  EXPECT_EQ(j.find("verdicts")->array.size(), e.criteria.size());
  EXPECT_TRUE(j.find("metrics")->find("train_loss C=1 d=64") != nullptr);
  EXPECT_EQ(j.find("device")->string, "cpu");

  // The same run on the placement-check device (core/device.h): every model, batch and label must
  // be moved there (a tensor left behind is a device-mismatch error), and the numbers are the CPU's.
  Context on = ctx;
  on.out_dir = dir.file("out-cpu1");
  on.device = Device::placement_check();
  const RunSummary moved = run_experiment(e, on);
  EXPECT_EQ(moved.metrics, s.metrics);
  const io::JsonValue jm = io::parse_json(io::read_file(on.out_dir + "/metrics.json"), "metrics.json");
  EXPECT_EQ(jm.find("device")->string, "cpu:1");
  EXPECT_NE(io::read_file(on.out_dir + "/report.md").find("Device: cpu:1"), std::string::npos);
}

// Every trained experiment's quick protocol on the placement-check device, on tiny data: none may
// leave a tensor on the CPU (what `resin lab <name> --device cuda` needs), and each judges every
// criterion.
TEST(LabTraining, EveryTrainedExperimentRunsOnAnotherDevice) {
  resin::testing::TempDir dir;
  const std::string data = write_fake_fashion_mnist(dir, 6000);
  for (const Experiment& e : experiments()) {
    if (!e.trains) continue;
    SCOPED_TRACE(e.name);
    Context ctx{.out_dir = dir.file("out/" + e.name),
                .quick = true,
                .threads = 1,
                .fashion_mnist = data,
                .command = "resin lab " + e.name + " --quick --device cpu:1",
                .device = Device::placement_check()};
    const auto t0 = std::chrono::steady_clock::now();
    try {
      const RunSummary s = run_experiment(e, ctx);
      EXPECT_EQ(s.judgements.size(), e.criteria.size());
    } catch (const std::exception& x) {
      ADD_FAILURE() << e.name << ": " << x.what();
    }
    std::fprintf(stderr, "%s on cpu:1: %.1f s\n", e.name.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}
