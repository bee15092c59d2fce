// Round trip through a second implementation: models exported by resin run in ONNX Runtime (the
// npm package onnxruntime-node, CPU build, installed into .deps/ort by scripts/install-deps.sh;
// RESIN_ORT_DIR overrides) and give resin's outputs within 1e-4 of their largest magnitude.
// Exported with a symbolic batch from a batch-1 example, run at batch 2.
#include <filesystem>

#include "onnx_test_util.h"
#include "resin/autograd/grad_mode.h"
#include "resin/io/json.h"

namespace resin::onnx {
namespace {

using testing::make_model;

std::string ort_dir() {
  const char* env = std::getenv("RESIN_ORT_DIR");
  return env ? env : std::string(RESIN_SOURCE_DIR) + "/.deps/ort";
}

struct OrtCase {
  std::string model;
  int64_t in, classes, image;
  bool fold = true;
};

TEST(OnnxRuntime, ResinExportsComputeTheSameInOnnxRuntime) {
  const std::string modules = ort_dir() + "/node_modules";
  ASSERT_TRUE(std::filesystem::exists(modules + "/onnxruntime-node/package.json"))
      << "onnxruntime-node is not installed in " << ort_dir() << "; run scripts/install-deps.sh (it runs npm ci "
      << "--ignore-scripts with tests/onnx/ort/package-lock.json)";
  const std::vector<OrtCase> cases = {
      {"resnet18", 3, 10, 64},
      {"resnet18", 3, 10, 64, false},  // BatchNormalization kept
      {"resnet50", 3, 10, 64},
      {"resnext50_32x4d", 3, 10, 64},
      {"densenet121", 3, 10, 64},
      {"resnet20", 3, 10, 32},
      {"rowformer:norm=pre,dim=32,depth=2,heads=4,ff=64", 1, 10, 28},  // pre-LN Transformer classifier
      {"vit:patch=7,dim=32,depth=1,heads=2,ff=64", 1, 10, 28},
      {"rowformer:norm=post,dim=16,depth=1,heads=2,ff=32,act=gelu", 1, 10, 8},
      {"preact_resnet164", 3, 10, 32},
      {"resmlp:width=32,blocks=2,placement=full_preact,laurel_rw=1,laurel_rank=4,laurel_k=2", 1, 10, 8},
      {"resmlp:width=32,blocks=2,placement=fixup", 1, 10, 8},
      {"rescnn:n=1,width=8,mix=exclusive_gate,shortcut=avg_projection", 3, 10, 16},
      {"highway:width=16,layers=2,carry_gate=1", 1, 10, 8},
      {"revmlp:width=16,blocks=2", 1, 10, 8},
  };
  testing::TempDir dir;
  std::vector<Tensor> expected;
  std::string manifest = "[";
  for (size_t i = 0; i < cases.size(); ++i) {
    const OrtCase& c = cases[i];
    const std::string base = dir.file("m" + std::to_string(i));
    Tensor x, y;
    {
      auto m = make_model(c.model, c.in, c.classes, c.image);
      export_model(*m, base + ".onnx",
                   {.input_shape = {1, c.in, c.image, c.image}, .dynamic_batch = true, .fold_batch_norm = c.fold});
      NoGradGuard ng;
      x = randn({2, c.in, c.image, c.image});
      y = m->forward(x);
    }
    testing::write_f32(base + ".in", x);
    expected.push_back(y);
    manifest += str_cat(i ? "," : "", "\n {\"model\": ", io::json_quote(base + ".onnx"), ", \"inputs\": {\"input\": ",
                        "{\"file\": ", io::json_quote(base + ".in"), ", \"dims\": [2, ", c.in, ", ", c.image, ", ", c.image,
                        "]}}, \"outputs\": {\"output\": ", io::json_quote(base + ".out"), "}}");
  }
  io::atomic_write_file(dir.file("manifest.json"), manifest + "\n]\n");
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/onnx/ort_run.js";
  const std::string err = testing::run_command(
      "NODE_PATH='" + modules + "' node '" + script + "' '" + dir.file("manifest.json") + "'", dir.file("log"));
  ASSERT_EQ(err, "");
  for (size_t i = 0; i < cases.size(); ++i) {
    const Tensor got = testing::read_f32(dir.file("m" + std::to_string(i) + ".out"), expected[i].shape());
    const double e = testing::relative_error(got, expected[i]);
    EXPECT_LE(e, 1e-4) << cases[i].model << (cases[i].fold ? "" : " (BN kept)");
    EXPECT_GT(testing::max_abs(expected[i]), 0.0) << cases[i].model;
    std::cout << "[ onnxruntime ] " << cases[i].model << (cases[i].fold ? "" : " (BN kept)") << ": max error " << e
              << " of the output's magnitude\n";
  }
}

}  // namespace
}  // namespace resin::onnx
