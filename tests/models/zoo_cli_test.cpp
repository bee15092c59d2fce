// `resin zoo` as a user runs it (the built CLI binary).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "../io/temp_dir.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"

namespace resin {
namespace {

struct CliRun {
  int rc;
  std::string out;
};

CliRun run_resin(const std::string& args) {
  testing::TempDir dir;
  const std::string out = dir.file("out");
  const std::string cmd = std::string(RESIN_BINARY_DIR) + "/resin " + args + " > '" + out + "' 2>&1";
  const int status = std::system(cmd.c_str());
  return {status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), io::read_file(out)};
}

double gmacs(const io::JsonValue& list, const std::string& name) {
  for (const auto& e : list.array)
    if (e.find("name")->string == name) return static_cast<double>(e.find("macs")->integer) / 1e9;
  ADD_FAILURE() << name << " not listed";
  return 0;
}

// The seed's comparison: ResNet-152 needs fewer multiply-accumulates than VGG-19 at 224x224
// (torchvision's figures: 11.51 and 19.63 GMACs).
TEST(ZooCli, JsonMacsResNet152VersusVgg19) {
  const CliRun r = run_resin("zoo --json --name resnet152,vgg19");
  ASSERT_EQ(r.rc, 0) << r.out;
  const io::JsonValue list = io::parse_json(r.out, "resin zoo --json");
  ASSERT_EQ(list.array.size(), 2u);
  for (const auto& e : list.array)
    for (const char* key : {"name", "family", "params", "macs", "input", "classes"})
      EXPECT_NE(e.find(key), nullptr) << key;
  EXPECT_EQ(list.array[0].find("params")->integer, 60192808);  // torchvision resnet152
  EXPECT_EQ(list.array[1].find("params")->integer, 143667240);  // torchvision vgg19
  EXPECT_EQ(std::round(gmacs(list, "resnet152") * 10) / 10, 11.5);
  EXPECT_EQ(std::round(gmacs(list, "vgg19") * 10) / 10, 19.6);
}

TEST(ZooCli, TableForAFamily) {
  const CliRun r = run_resin("zoo --family resnext-cifar");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("name"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resnext29_8x64d      resnext-cifar"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("34426698"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3x32x32"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("resnet20 "), std::string::npos) << r.out;
}

TEST(ZooCli, MarkdownTable) {
  const CliRun r = run_resin("zoo --markdown --family densenet-cifar --no-macs");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.rfind("| name | family | params | GMACs | input | description |\n|---|", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("| densenet_bc100_k12 | densenet-cifar | 769162 | - | 3x32x32 | "), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2 + 3);
}

TEST(ZooCli, UnknownNamesAndFamiliesFail) {
  CliRun r = run_resin("zoo --name resnet21");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("resnet20"), std::string::npos) << r.out;
  r = run_resin("zoo --family nope");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("densenet-cifar"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace resin
