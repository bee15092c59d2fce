// train/bench.h: what `resin bench` measures and reports (never how fast: no timing assertions).
#include <gtest/gtest.h>

#include "resin/core/error.h"
#include "resin/io/json.h"
#include "resin/train/bench.h"

namespace resin::train {
namespace {

BenchConfig tiny(const std::string& mode) {
  return {.model = "resnet20", .mode = mode, .batch_size = 2, .image_size = 8, .threads = 1, .warmup = 1, .reps = 3};
}

TEST(Bench, QuantileInterpolatesOrderStatistics) {
  EXPECT_DOUBLE_EQ(quantile({3, 1, 2}, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({10, 20}, 0.1), 11.0);
  EXPECT_DOUBLE_EQ(quantile({5}, 0.9), 5.0);
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0.0);
}

TEST(Bench, TrainingReportsConsistentStatistics) {
  const BenchResult r = run_bench(tiny("train"));
  ASSERT_EQ(r.seconds.size(), 3u);
  EXPECT_GT(r.min_s, 0.0);
  EXPECT_LE(r.min_s, r.p10_s);
  EXPECT_LE(r.p10_s, r.median_s);
  EXPECT_LE(r.median_s, r.p90_s);
  EXPECT_DOUBLE_EQ(r.images_per_s, 2.0 / r.median_s);
  // 3 passes of 2 × MACs per image, for 2 images.
  EXPECT_GT(r.macs_per_image, 0);
  EXPECT_NEAR(r.gflop_per_iter, 3.0 * 2.0 * 2.0 * static_cast<double>(r.macs_per_image) * 1e-9, 1e-12);
  EXPECT_EQ(r.parameters, 269722);  // resnet20, 3 input channels, 10 classes
  EXPECT_GT(r.peak_rss_mib, 0.0);
  EXPECT_GT(r.peak_tensor_mib, 0.0);
  EXPECT_EQ(r.threads, 1);
  EXPECT_FALSE(r.fused);
}

TEST(Bench, InferenceRunsTheFusedPlanUnlessAskedNotTo) {
  BenchConfig c = tiny("infer");
  BenchResult r = run_bench(c);
  EXPECT_TRUE(r.fused);
  EXPECT_NEAR(r.gflop_per_iter, 2.0 * 2.0 * static_cast<double>(r.macs_per_image) * 1e-9, 1e-12);
  c.fuse = false;
  c.channels_last = true;
  r = run_bench(c);
  EXPECT_FALSE(r.fused);
  EXPECT_EQ(r.seconds.size(), 3u);
}

TEST(Bench, JsonCarriesConfigurationAndTimes) {
  const BenchResult r = run_bench(tiny("infer"));
  const io::JsonValue j = io::parse_json(to_json(r), "bench json");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.find("model")->string, "resnet20");
  EXPECT_EQ(j.find("batch_size")->integer, 2);
  EXPECT_EQ(j.find("times_ms")->array.size(), 3u);
  EXPECT_TRUE(j.find("fused")->boolean);
  for (const char* k : {"median_ms", "p10_ms", "p90_ms", "images_per_s", "gflops", "peak_rss_mib", "load_avg"})
    EXPECT_NE(j.find(k), nullptr) << k;
}

// On another device (the placement check cpu:1 stands in for a GPU) the model, batch and labels are
// moved there: a tensor left on the CPU would be a device-mismatch error. Inference with the fused
// plan runs too (cpu:1 computes on the CPU's kernels).
TEST(Bench, RunsOnAnotherDevice) {
  for (const char* mode : {"train", "infer"}) {
    BenchConfig c = tiny(mode);
    c.device = "cpu:1";
    const BenchResult r = run_bench(c);
    EXPECT_EQ(r.seconds.size(), 3u) << mode;
    EXPECT_EQ(io::parse_json(to_json(r), "bench json").find("device")->string, "cpu:1");
    EXPECT_NE(to_text(r).find("on cpu:1"), std::string::npos) << to_text(r);
  }
}

TEST(Bench, BadConfigurationsAreErrors) {
  BenchConfig c = tiny("train");
  c.mode = "serve";
  EXPECT_THROW(run_bench(c), resin::Error);
  c = tiny("train");
  c.dtype = "f16";
  EXPECT_THROW(run_bench(c), resin::Error);
  c = tiny("train");
  c.device = "tpu";
  EXPECT_THROW(run_bench(c), resin::Error);
  c = tiny("train");
  c.model = "resnet21";
  EXPECT_THROW(run_bench(c), resin::Error);
  c = tiny("train");
  c.reps = 0;
  EXPECT_THROW(run_bench(c), resin::Error);
}

}  // namespace
}  // namespace resin::train
