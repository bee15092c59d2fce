// ONNX files from elsewhere: torchvision models (and a torch.nn Transformer encoder) exported by
// Debian's PyTorch (torch.onnx.export, tests/onnx/torch_export.py) import into resin and give
// PyTorch's logits within 1e-4 of their largest magnitude; the imported graphs train.
#include "onnx_test_util.h"
#include "resin/autograd/grad_mode.h"

namespace resin::onnx {
namespace {

struct TorchCase {
  std::string name;
  Shape input, output;
};

TEST(OnnxFromTorch, TorchvisionExportsGiveTorchvisionsLogits) {
  testing::TempDir dir;
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/onnx/torch_export.py";
  const std::string err = testing::run_command("/usr/bin/python3 '" + script + "' '" + dir.path() + "'", dir.file("log"));
  ASSERT_EQ(err, "") << "(torch and torchvision come from scripts/install-deps.sh: python3-torch, python3-torchvision)";
  const std::vector<TorchCase> cases = {{"resnet18", {2, 3, 64, 64}, {2, 10}},
                                        {"resnet50", {1, 3, 64, 64}, {1, 10}},
                                        {"densenet121", {2, 3, 64, 64}, {2, 10}},
                                        {"prenorm_transformer", {2, 12, 16}, {2, 10}}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto g = OnnxGraph::load(dir.file(c.name + ".onnx"));
    const Tensor x = testing::read_f32(dir.file(c.name + ".in"), c.input);
    const Tensor want = testing::read_f32(dir.file(c.name + ".out"), c.output);
    Tensor got;
    {
      NoGradGuard ng;
      got = g->forward(x);
    }
    const double e = testing::relative_error(got, want);
    EXPECT_LE(e, 1e-4);
    EXPECT_GT(testing::max_abs(want), 0.0);
    std::cout << "[ torch.onnx ] " << c.name << " (opset " << g->opset() << ", " << g->nodes().size()
              << " nodes): max error " << e << " of the logits' magnitude\n";
    if (c.name == "resnet18") {
      // Fine-tuning the imported graph: every weight gets a gradient.
      g->train();
      cross_entropy(g->forward(x), from_data<int64_t>({3, 8}, {2})).backward();
      int64_t with_grad = 0;
      for (auto& [name, p] : g->named_parameters()) {
        ASSERT_TRUE(p.grad().defined()) << name;
        with_grad += testing::max_abs(p.grad()) > 0;
      }
      EXPECT_EQ(with_grad, static_cast<int64_t>(g->named_parameters().size()));
    }
  }
}

}  // namespace
}  // namespace resin::onnx
