// The resin binary: help, bad flags and bad values give clear messages and a non-zero exit code.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include "resin/core/cuda.h"

namespace {

struct CliRun {
  int code;
  std::string output;
};

CliRun run(const std::string& args) {
  const std::string cmd = std::string(RESIN_BINARY_DIR) + "/resin " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void expect_contains(const CliRun& r, const std::string& s) {
  EXPECT_NE(r.output.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.output;
}

}  // namespace

TEST(Cli, HelpForEveryCommand) {
  for (const char* c : {"train", "eval", "zoo", "lab", "bench"}) {
    CliRun r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    expect_contains(r, "usage: resin " + std::string(c));
  }
  CliRun r = run("--help");
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "commands:");
}

TEST(Cli, BadInputIsAClearErrorNotACrash) {
  struct Case {
    const char* args;
    int code;
    const char* message;
  };
  const Case cases[] = {
      {"frobnicate", 2, "unknown command 'frobnicate'"},
      {"train --epochz 3", 1, "unknown option --epochz"},
      {"train --epochs three", 1, "--epochs expects an integer, got 'three'"},
      {"train --epochs 0", 1, "--epochs must be in [1,"},
      {"train --lr nan", 1, "--lr expects a finite number"},
      {"train --model resnet21 --out /tmp/resin_cli_test_unknown_model", 1, "unknown model 'resnet21'"},
      {"train --data imagenet --out /tmp/resin_cli_test_unknown_data", 1, "unknown dataset 'imagenet'"},
      {"train --data-dir /nonexistent/dir --out /tmp/resin_cli_test_missing", 1, "/nonexistent/dir"},
      {"eval", 1, "missing required option --checkpoint"},
      {"eval --checkpoint /nonexistent.ckpt", 1, "/nonexistent.ckpt"},
      {"bench --mode fly", 1, "--mode expects train or infer"},
      {"bench --dtype f8", 1, "--dtype expects f32, bf16 or f16, got 'f8'"},
      {"bench --dtype f16", 1, "--dtype f16 runs on CUDA devices only"},
      {"bench --mode infer --dtype bf16", 1, "add --no-fuse"},
      {"train --dtype f16 --out /tmp/resin_cli_test_dtype", 1, "--dtype f16 runs on CUDA devices only"},
      {"train --loss-scale big --out /tmp/resin_cli_test_scale", 1,
       "--loss-scale expects auto, dynamic, none or a positive number"},
      {"bench --reps 0", 1, "--reps must be in [1,"},
      {"bench --model resnet21", 1, "unknown model 'resnet21'"},
      {"bench --device cpu:2", 1, "unknown device 'cpu:2'"},
      {"lab e3-ensemble --device tpu", 1, "unknown device 'tpu'"},
      {"eval --checkpoint /nonexistent.ckpt --device gpu", 1, "unknown device 'gpu'"},
  };
  for (const Case& c : cases) {
    CliRun r = run(c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.output;
    expect_contains(r, c.message);
  }
  // A CUDA device this build or machine cannot use: refused before any work, by every command.
  if (!resin::cuda::is_available())
    for (const char* args : {"bench --device cuda", "lab e3-ensemble --device cuda --out /tmp/resin_cli_test_lab",
                             "train --device cuda --out /tmp/resin_cli_test_device"}) {
      CliRun r = run(args);
      EXPECT_EQ(r.code, 1) << args << "\n" << r.output;
      expect_contains(r, "cuda:0 is not available");
    }
}

TEST(Cli, ZooJsonListsEveryModel) {
  CliRun r = run("zoo --json --no-macs --family resnet-cifar");
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "\"name\": \"resnet20\"");
  expect_contains(r, "\"params\": 269722");
}

TEST(Cli, LabListsRunsAndRejectsUnknownNames) {
  CliRun r = run("lab list");
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "e4-shattered");
  expect_contains(r, "seed-bottleneck");
  r = run("lab no-such-experiment");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "unknown experiment 'no-such-experiment'. Experiments: e2-identity");
  r = run("lab");
  EXPECT_NE(r.code, 0);
  r = run("lab seed-bottleneck --bogus");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "unknown option --bogus");
  const std::string out = ::testing::TempDir() + "resin-lab-cli-test";
  r = run("lab seed-bottleneck --quick --threads 1 --out " + out);
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "S1 reproduced, S2 reproduced, S3 reproduced");
  FILE* f = std::fopen((out + "/report.md").c_str(), "r");
  EXPECT_NE(f, nullptr) << out;
  if (f) std::fclose(f);
}

TEST(Cli, BenchJsonReportsEveryField) {
  CliRun r = run("bench --model resnet20 --batch-size 2 --image-size 8 --warmup 1 --reps 2 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* key : {"\"median_ms\": ", "\"p10_ms\": ", "\"p90_ms\": ", "\"images_per_s\": ",
                          "\"gflops\": ", "\"peak_rss_mib\": ", "\"times_ms\": [", "\"mode\": \"train\""})
    expect_contains(r, key);
  r = run("bench --model resnet20 --mode infer --batch-size 2 --image-size 8 --warmup 0 --reps 1 --threads 1");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_contains(r, "fused plan");
  expect_contains(r, "images/s");
}
