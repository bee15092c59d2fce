// The resin binary: help, bad flags and bad values give clear messages and a non-zero exit code.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

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
  for (const char* c : {"train", "eval", "zoo"}) {
    CliRun r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    expect_contains(r, "usage: resin " + std::string(c));
  }
  CliRun r = run("--help");
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "commands:");
}

TEST(Cli, BadInputIsAClearErrorNotACrash) {
  CliRun r = run("frobnicate");
  EXPECT_EQ(r.code, 2);
  expect_contains(r, "unknown command 'frobnicate'");
  r = run("train --epochz 3");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "unknown option --epochz");
  r = run("train --epochs three");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "--epochs expects an integer, got 'three'");
  r = run("train --epochs 0");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "--epochs must be in [1,");
  r = run("train --lr nan");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "--lr expects a finite number");
  r = run("train --model resnet21 --out /tmp/resin_cli_test_unknown_model");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "unknown model 'resnet21'");
  r = run("train --data imagenet --out /tmp/resin_cli_test_unknown_data");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "unknown dataset 'imagenet'");
  r = run("train --data fashion-mnist --data-dir /nonexistent/dir --out /tmp/resin_cli_test_missing");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "/nonexistent/dir");
  r = run("eval");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "missing required option --checkpoint");
  r = run("eval --checkpoint /nonexistent.ckpt");
  EXPECT_EQ(r.code, 1);
  expect_contains(r, "/nonexistent.ckpt");
}

TEST(Cli, ZooJsonListsEveryModel) {
  CliRun r = run("zoo --json --no-macs --family resnet-cifar");
  EXPECT_EQ(r.code, 0);
  expect_contains(r, "\"name\": \"resnet20\"");
  expect_contains(r, "\"params\": 269722");
}
