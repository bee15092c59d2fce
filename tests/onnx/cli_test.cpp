// `resin export` and `resin import`: from a zoo model and from a training run's checkpoint, and
// their errors.
#include "onnx_test_util.h"
#include "resin/train/checkpoint.h"

namespace resin::onnx {
namespace {

struct CliRun {
  bool ok;
  std::string output;
};

CliRun resin_cli(const std::string& args, const testing::TempDir& dir) {
  const std::string err =
      testing::run_command(std::string(RESIN_BINARY_DIR) + "/resin " + args, dir.file("cli.log"));
  return {err.empty(), err.empty() ? io::read_file(dir.file("cli.log")) : err};
}

void expect_contains(const CliRun& r, const std::string& s) {
  EXPECT_NE(r.output.find(s), std::string::npos) << "missing '" << s << "' in:\n" << r.output;
}

TEST(OnnxCli, ExportThenImportRunAndSaveWeights) {
  testing::TempDir dir;
  CliRun e = resin_cli("export --model resnet20 --out " + dir.file("r20.onnx") + " --dynamic-batch", dir);
  ASSERT_TRUE(e.ok) << e.output;
  expect_contains(e, "19 BatchNorm folded");
  expect_contains(e, "verified: the re-imported graph matches the model");
  CliRun i = resin_cli("import " + dir.file("r20.onnx") + " --run --batch 3 --out " + dir.file("w.safetensors"), dir);
  ASSERT_TRUE(i.ok) << i.output;
  expect_contains(i, "input   input f32 [batch, 3, 32, 32]");
  expect_contains(i, "output -> [3, 10]");
  expect_contains(i, "ops     Add 9, Constant 10, Conv 19");
  const auto saved = train::load_weights(dir.file("w.safetensors"));
  const auto g = OnnxGraph::load(dir.file("r20.onnx"));
  EXPECT_EQ(saved.size(), g->state_dict().size());
  EXPECT_TRUE(saved.count("layer1.0.conv1.bias"));  // the folded BN's shift
}

TEST(OnnxCli, ExportsATrainingRunsWeights) {
  testing::TempDir dir;
  const std::string run = dir.file("run");
  CliRun t = resin_cli("train --model resnet20 --epochs 1 --max-steps 2 --batch-size 16 --train-subset 32 "
                       "--test-subset 32 --progress lines --out " + run, dir);
  ASSERT_TRUE(t.ok) << t.output;
  CliRun e = resin_cli("export --checkpoint " + run + " --keep-bn --out " + dir.file("run.onnx"), dir);
  ASSERT_TRUE(e.ok) << e.output;
  expect_contains(e, "input input [1, 1, 28, 28]");  // Fashion-MNIST: 1 channel, 28x28, from the run's config
  // The file holds the trained weights under their names.
  auto g = OnnxGraph::load(dir.file("run.onnx"));
  const auto trained = train::load_weights(run + "/weights.safetensors");
  int64_t compared = 0;
  for (const auto& [name, t] : g->state_dict()) {
    ASSERT_TRUE(trained.count(name)) << name;
    EXPECT_EQ(t.to_vector(), trained.at(name).to_vector()) << name;
    ++compared;
  }
  EXPECT_EQ(compared + 19, static_cast<int64_t>(trained.size()));  // all but num_batches_tracked
}

TEST(OnnxCli, ErrorsAreClear) {
  testing::TempDir dir;
  for (const char* c : {"export", "import"}) {
    CliRun h = resin_cli(std::string(c) + " --help", dir);
    EXPECT_TRUE(h.ok) << h.output;
    expect_contains(h, std::string("usage: resin ") + c);
  }
  expect_contains(resin_cli("--help", dir), "export  write a model as an ONNX file");
  io::atomic_write_file(dir.file("junk.onnx"), "definitely not protobuf");
  const std::pair<std::string, std::string> cases[] = {
      {"import", "give the model file first"},
      {"import " + dir.file("junk.onnx"), "not an ONNX model"},
      {"import " + dir.file("missing.onnx"), "cannot open"},
      {"export --out " + dir.file("x.onnx"), "say which network with --model"},
      {"export --model resnet21 --out " + dir.file("x.onnx"), "unknown model 'resnet21'"},
      {"export --model resnet20 --opset 9 --out " + dir.file("x.onnx"), "opset 9 is not supported"},
      {"export --model resnet20 --weights a --checkpoint b --out " + dir.file("x.onnx"), "not both"},
  };
  for (const auto& [args, message] : cases) {
    CliRun r = resin_cli(args, dir);
    EXPECT_FALSE(r.ok) << args;
    expect_contains(r, message);
  }
}

}  // namespace
}  // namespace resin::onnx
