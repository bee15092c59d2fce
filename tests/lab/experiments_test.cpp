// Every deterministic experiment in its quick protocol: each criterion that is a deterministic check
// (exact identities, counts, fixed-seed statistics at init) must come out `reproduced`, and every
// report file must be written. Runs in CI; the whole binary takes seconds in Release.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "../io/temp_dir.h"
#include "resin/lab/experiment.h"

using namespace resin;
using namespace resin::lab;

namespace {

RunSummary run_quick(const std::string& name, const resin::testing::TempDir& dir) {
  Context ctx{.out_dir = dir.file(name), .quick = true, .command = "resin lab " + name + " --quick"};
  RunSummary s = run_experiment(find_experiment(name), ctx);
  for (const char* f : {"report.md", "metrics.json"})
    EXPECT_TRUE(std::filesystem::exists(ctx.out_dir + "/" + f)) << name << ": " << f;
  return s;
}

void expect_verdicts(const RunSummary& s, const std::map<std::string, Verdict>& want) {
  for (const auto& [id, v] : want) {
    bool found = false;
    for (const Judgement& j : s.judgements)
      if (j.id == id) {
        found = true;
        EXPECT_EQ(verdict_name(j.verdict), std::string(verdict_name(v)))
            << s.name << " " << id << ": " << j.measured;
      }
    EXPECT_TRUE(found) << s.name << " has no criterion " << id;
  }
}

constexpr Verdict kYes = Verdict::reproduced;

}  // namespace

TEST(LabExperiments, E2IdentityPathAndAdditiveUnrolling) {
  resin::testing::TempDir dir;
  const RunSummary s = run_quick("e2-identity", dir);
  expect_verdicts(s, {{"I1", kYes}, {"I2", kYes}, {"I3", Verdict::reported}});
  EXPECT_DOUBLE_EQ(s.metric("coef_lambda_0.5_L54"), std::ldexp(1.0, -54));
}

TEST(LabExperiments, E3PathLengths) {
  resin::testing::TempDir dir;
  const RunSummary s = run_quick("e3-paths", dir);
  expect_verdicts(s, {{"P5a", kYes}, {"P5b", kYes}, {"P5c", kYes}});
  EXPECT_NEAR(s.metric("mass_5_17_percent"), 0.4537, 5e-5);
  EXPECT_LT(s.metric("init_log_grad_slope"), 0.0);  // per-path gradient decays with length
}

TEST(LabExperiments, E4ShatteredGradients) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("e4-shattered", dir), {{"P1", kYes}, {"P2", kYes}, {"P3", kYes}});
}

TEST(LabExperiments, E6aLayerNormAtInit) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("e6a-ln-init", dir), {{"P1", kYes}, {"P2", kYes}, {"P4", kYes}});
}

TEST(LabExperiments, E8LaurelInit) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("e8-laurel-init", dir), {{"P1", kYes}, {"P2", kYes}});
}

TEST(LabExperiments, E9Reversible) {
  resin::testing::TempDir dir;
  const RunSummary s = run_quick("e9-reversible", dir);
  expect_verdicts(s, {{"P1-init", kYes}, {"P3", kYes}});
  // P2 is judged on 128 blocks in f32, where reconstruction error reaches the gradients (see the
  // report); at 8 blocks, and with the f64 stream at 128, the two backward passes agree.
  EXPECT_LT(s.metric("grad_rel_error_B8"), 1e-4);
  EXPECT_LT(s.metric("grad_rel_error_B128_wide_stream"), 1e-6);
}

TEST(LabExperiments, E10bResnextCounts) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("e10b-resnext-counts", dir), {{"P1", kYes}});
}

TEST(LabExperiments, E11NormFreeInit) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("e11-init", dir), {{"P1a", kYes}, {"P1b", kYes}});
}

TEST(LabExperiments, SeedBottleneckTable) {
  resin::testing::TempDir dir;
  expect_verdicts(run_quick("seed-bottleneck", dir), {{"S1", kYes}, {"S2", kYes}, {"S3", kYes}});
}
