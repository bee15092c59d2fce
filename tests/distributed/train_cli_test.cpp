// `resin train` as a data-parallel job: `resin launch -n 2` matches one process, resumes as a
// group, and a rank that dies or hangs ends the job with a clear error instead of a hang.
// Data: the first 256 Fashion-MNIST training images (dataset-fashion-mnist), no augmentation.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "multiprocess.h"
#include "resin/train/checkpoint.h"

namespace resin::testing {
namespace {

namespace fs = std::filesystem;

const std::string kResin = std::string(RESIN_BINARY_DIR) + "/resin";

// `resin train` on the small setup; `extra` options replace the defaults of the same name (a
// flag is given as {"--flag", ""}).
std::vector<std::string> train_args(const std::string& out,
                                    const std::vector<std::pair<std::string, std::string>>& extra = {}) {
  std::vector<std::pair<std::string, std::string>> opts = {
      {"--model", "rescnn:n=1,width=4"}, {"--train-subset", "256"}, {"--test-subset", "100"},
      {"--batch-size", "32"},            {"--epochs", "1"},         {"--lr", "0.02"},
      {"--no-augment", ""},              {"--threads", "1"},        {"--workers", "0"},
      {"--log-every", "1"},              {"--progress", "lines"},   {"--out", out}};
  for (const auto& [k, v] : extra) {
    auto it = std::find_if(opts.begin(), opts.end(), [&](const auto& o) { return o.first == k; });
    if (it != opts.end()) it->second = v;
    else opts.emplace_back(k, v);
  }
  std::vector<std::string> a = {"train"};
  for (const auto& [k, v] : opts) {
    a.push_back(k);
    if (!v.empty()) a.push_back(v);
  }
  return a;
}

Exit run_resin(const std::vector<std::string>& args, const std::string& log, const Env& env = {}, double timeout = 120) {
  std::vector<std::string> argv = {kResin};
  argv.insert(argv.end(), args.begin(), args.end());
  return wait_exit(spawn(argv, env, log), timeout);
}

Exit launch(int n, const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> a = {"launch", "-n", std::to_string(n), "--", "resin"};
  a.insert(a.end(), args.begin(), args.end());
  return run_resin(a, log, {{"OMP_NUM_THREADS", "1"}});
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Largest |a - b| over every tensor of two weights files (which must hold the same names).
double max_weight_diff(const std::string& a, const std::string& b) {
  const auto wa = train::load_weights(a), wb = train::load_weights(b);
  EXPECT_EQ(wa.size(), wb.size());
  double worst = 0;
  for (const auto& [name, t] : wa) {
    const auto x = t.to_vector(), y = wb.at(name).to_vector();
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  }
  return worst;
}

TEST(TrainCli, TwoProcessesEqualOneProcess) {
  const std::string dir = fresh_dir("train_equal");
  // Global batch 32 either way; SyncBN in both (one process runs the same kernel) so the
  // normalisation statistics, too, cover the whole batch of 32.
  Exit one = run_resin(train_args(dir + "/one", {{"--sync-bn", ""}}), dir + "/one.log");
  ASSERT_EQ(one.code, 0) << one.output;
  Exit two = launch(2, train_args(dir + "/two", {{"--sync-bn", ""}}), dir + "/two.log");
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("data parallel: 2 processes (gloo), 16 images each per step"), std::string::npos)
      << two.output;
  EXPECT_NE(two.output.find("gradient all-reduce: 8 steps"), std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("(rank 1/2)"), std::string::npos) << "rank 1 must stay quiet:\n" << two.output;
  // Same weights up to the order of floating-point sums: measured 2.6e-6 at most (weights ~0.2)
  // after 8 steps of SGD with momentum, which amplify the first steps' rounding differences.
  const double diff = max_weight_diff(dir + "/one/weights.safetensors", dir + "/two/weights.safetensors");
  EXPECT_LT(diff, 2e-5);
  // The metrics are the job's (summed over ranks): one record per step plus the evaluation.
  const std::string m1 = slurp(dir + "/one/metrics.jsonl"), m2 = slurp(dir + "/two/metrics.jsonl");
  EXPECT_EQ(std::count(m2.begin(), m2.end(), '\n'), 9) << m2;
  EXPECT_NE(m2.find("\"kind\": \"eval\", \"epoch\": 1, \"step\": 8"), std::string::npos) << m2;
  fs::remove_all(dir);
}

// The same job with every process on the placement-check device cpu:1 (core/device.h), which
// stands in for a GPU: gradients go from the device into the host buckets Gloo reduces and the
// averages back, parameters and buffers are broadcast from the device. The weights are the CPU
// job's exactly (the same kernels, the same sums). With --sync-bn the job runs too (SyncBN's
// tensor-ops form, its sums through Gloo's host memory; its numbers: sync_bn_test.cpp).
TEST(TrainCli, TwoProcessesOnAnotherDeviceEqualTheCpuJob) {
  const std::string dir = fresh_dir("train_device");
  Exit cpu = launch(2, train_args(dir + "/cpu"), dir + "/cpu.log");
  ASSERT_EQ(cpu.code, 0) << cpu.output;
  Exit moved = launch(2, train_args(dir + "/cpu1", {{"--device", "cpu:1"}}), dir + "/cpu1.log");
  ASSERT_EQ(moved.code, 0) << moved.output;
  EXPECT_NE(moved.output.find("on cpu:1"), std::string::npos) << moved.output;
  EXPECT_EQ(max_weight_diff(dir + "/cpu/weights.safetensors", dir + "/cpu1/weights.safetensors"), 0.0);
  Exit synced =
      launch(2, train_args(dir + "/sync", {{"--device", "cpu:1"}, {"--sync-bn", ""}}), dir + "/sync.log");
  ASSERT_EQ(synced.code, 0) << synced.output;
  EXPECT_NE(synced.output.find("synchronized BatchNorm"), std::string::npos) << synced.output;
  fs::remove_all(dir);
}

TEST(TrainCli, ResumesAsAGroup) {
  const std::string dir = fresh_dir("train_resume");
  const std::vector<std::pair<std::string, std::string>> two_epochs = {{"--epochs", "2"}};
  Exit straight = launch(2, train_args(dir + "/a", two_epochs), dir + "/a.log");
  ASSERT_EQ(straight.code, 0) << straight.output;
  // Stop mid-way through epoch 2 (step 12 of 16, checkpointed), then resume every rank from it.
  auto first = two_epochs;
  first.insert(first.end(), {{"--max-steps", "12"}, {"--checkpoint-every", "4"}});
  Exit part = launch(2, train_args(dir + "/b", first), dir + "/b1.log");
  ASSERT_EQ(part.code, 0) << part.output;
  auto rest = two_epochs;
  rest.emplace_back("--resume", "");
  Exit resumed = launch(2, train_args(dir + "/b", rest), dir + "/b2.log");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("epoch 1, step 12"), std::string::npos) << resumed.output;
  EXPECT_EQ(max_weight_diff(dir + "/a/weights.safetensors", dir + "/b/weights.safetensors"), 0.0);
  fs::remove_all(dir);
}

// Starts a 2-rank job directly (no launcher, which would stop the survivor itself), waits until
// rank 0 trains, then sends `sig` to rank 1. Returns rank 0's exit.
Exit survivor_after(int sig, double timeout_s) {
  const std::string dir = fresh_dir(sig == SIGKILL ? "train_kill" : "train_stop");
  const int port = free_port();
  std::vector<Proc> ranks;
  for (int r = 0; r < 2; ++r) {
    std::vector<std::string> argv = {kResin};
    auto a = train_args(dir + "/run", {{"--epochs", "1000"}, {"--dist-timeout", std::to_string(timeout_s)}});
    argv.insert(argv.end(), a.begin(), a.end());
    ranks.push_back(spawn(argv, rank_env(r, 2, port), dir + "/rank" + std::to_string(r) + ".log"));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (slurp(dir + "/run/metrics.jsonl").find("\"step\": 3") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(ranks[1].pid, sig);
  Exit survivor = wait_exit(ranks[0], timeout_s + 30);
  ::kill(ranks[1].pid, SIGKILL);
  wait_exit(ranks[1], 10);
  fs::remove_all(dir);
  return survivor;
}

TEST(TrainCli, KilledRankEndsTheJobAtOnce) {
  const Exit e = survivor_after(SIGKILL, 30);
  EXPECT_EQ(e.code, 1) << e.output;
  EXPECT_LT(e.seconds, 10) << "a dead peer's connections close: no need to wait for the 30 s timeout";
  EXPECT_NE(e.output.find("resin train (rank 0/2): error: distributed: "), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("Another rank probably exited or stopped responding"), std::string::npos) << e.output;
}

TEST(TrainCli, HungRankEndsTheJobAfterTheTimeout) {
  const Exit e = survivor_after(SIGSTOP, 2);
  EXPECT_EQ(e.code, 1) << e.output;
  EXPECT_GT(e.seconds, 1.5);
  EXPECT_LT(e.seconds, 8) << e.output;
  EXPECT_NE(e.output.find("stopped responding (collectives time out after 2 s"), std::string::npos) << e.output;
}

TEST(Launch, ReportsUsageAndFailures) {
  const std::string dir = fresh_dir("launch");
  Exit help = run_resin({"launch", "--help"}, dir + "/help.log");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("usage: resin launch"), std::string::npos) << help.output;
  Exit none = run_resin({"launch", "-n", "2"}, dir + "/none.log");
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.output.find("no command"), std::string::npos) << none.output;
  // Every rank fails; the launcher returns the failure.
  Exit bad = launch(2, {"train", "--model", "resnet21", "--out", dir + "/bad"}, dir + "/bad.log");
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("unknown model 'resnet21'"), std::string::npos) << bad.output;
  // Indivisible batch: a clear error naming both numbers.
  Exit odd = launch(2, train_args(dir + "/odd", {{"--batch-size", "33"}}), dir + "/odd.log");
  EXPECT_EQ(odd.code, 1) << odd.output;
  EXPECT_NE(odd.output.find("--batch-size 33 must be divisible by the number of processes (2)"), std::string::npos)
      << odd.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace resin::testing
