// ONNX export: every zoo family and block type exports, passes onnx::checker and re-runs (through
// resin's importer) to the model's own output; BN folding, names, dynamic batch, opsets, errors.
#include <map>
#include <set>

#include "onnx_test_util.h"
#include "resin/blocks/transformer.h"

namespace resin::onnx {
namespace {

using testing::make_model;

struct Case {
  std::string model;
  int64_t in, classes, image;
};
std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.model; }

class ExportModels : public ::testing::TestWithParam<Case> {};

// resnet50, resnext50_32x4d and densenet121 export (and verify) in ort_test.cpp.
// Export verifies itself (export.h): the serialized graph, imported again, must give the model's
// output for batches of 1 and 2 within 1e-4 of the output's magnitude, or export throws.
TEST_P(ExportModels, ReimportedGraphComputesTheModel) {
  const Case& c = GetParam();
  auto m = make_model(c.model, c.in, c.classes, c.image);
  ExportReport r;
  ASSERT_NO_THROW(export_bytes(*m, {.input_shape = {1, c.in, c.image, c.image}, .dynamic_batch = true}, &r));
  EXPECT_GE(r.verify_error, 0.0);
  EXPECT_LE(r.verify_error, 1e-4);
  EXPECT_EQ(r.output_shape, Shape({1, c.classes}));
  EXPECT_GT(r.nodes, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, ExportModels,
    ::testing::Values(Case{"resnet20", 3, 10, 32}, Case{"resnet20_b", 1, 10, 28}, Case{"plain20", 3, 10, 32},
                      Case{"preact_resnet164", 3, 10, 32}, Case{"wrn_16_8", 3, 10, 16},
                      Case{"densenet40_k12", 3, 10, 32}, Case{"densenet_bc100_k12", 3, 100, 32},
                      Case{"resnet18", 3, 1000, 64}, Case{"plain18", 1, 10, 32}),
    [](const auto& info) { return info.param.model; });

INSTANTIATE_TEST_SUITE_P(
    Lab, ExportModels,
    ::testing::Values(
        Case{"mlp:width=32,depth=4", 1, 10, 8}, Case{"resmlp:width=32,blocks=2", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,placement=full_preact,act=gelu", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,placement=bn_after_add,mix=scaled,shortcut_scale=0.5,branch_scale=2", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,placement=relu_preact,mix=learned_scale,alpha_init=0.3", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,placement=ln_pre,mix=exclusive_gate,shortcut_dropout=0.2", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,placement=relu_before_add,mix=shortcut_gate,shortcut=projection_all", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,mix=carry_gate,shortcut=conv1x1", 1, 10, 8},
        Case{"resmlp:width=32,blocks=3,placement=fixup", 1, 10, 8},
        Case{"resmlp:width=32,blocks=3,placement=full_preact,laurel_rw=1,laurel_rank=4,laurel_k=2,laurel_pa_rank=2",
             1, 10, 8},
        Case{"resmlp:width=32,blocks=3,mix=scaled,alpha_min=0.5", 1, 10, 8},
        Case{"resmlp:width=32,blocks=2,mix=none", 1, 10, 8},
        Case{"rescnn:n=1,width=8", 3, 10, 16}, Case{"rescnn:n=1,width=8,placement=full_preact,shortcut=avg_projection", 3, 10, 16},
        Case{"rescnn:n=1,width=8,placement=fixup,shortcut=conv1x1", 3, 10, 16},
        Case{"rescnn:n=1,width=8,placement=bn_after_add,mix=exclusive_gate,shortcut=projection", 3, 10, 16},
        Case{"highway:width=16,layers=2,carry_gate=1", 1, 10, 8}, Case{"revmlp:width=16,blocks=2", 1, 10, 8},
        Case{"rowformer:norm=pre,dim=16,depth=2,heads=2,ff=32", 1, 10, 8},
        Case{"rowformer:norm=post,dim=16,depth=1,heads=4,ff=32,act=gelu", 1, 10, 8},
        Case{"rowformer:norm=peri,dim=16,depth=1,heads=2,ff=32,alpha_min=0.5", 1, 10, 8},
        Case{"rowformer:norm=rezero,dim=16,depth=1,heads=2,ff=32", 1, 10, 8},
        Case{"vit:patch=4,dim=16,depth=1,heads=2,ff=32", 3, 10, 8}),
    [](const auto& info) { return "lab" + std::to_string(info.index); });

// VGG's head pools to 7×7 whatever the input (its 4096-wide classifier is too big for a unit
// test): even bins, single-pixel bins and uneven bins.
TEST(OnnxExport, AdaptivePoolingWhereONNXCanExpressIt) {
  for (int64_t size : {1, 7, 14, 8}) {
    nn::Sequential m({std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 3}), nn::AdaptiveAvgPool2d(7, 7),
                      nn::Flatten(), std::make_shared<nn::Linear>(nn::LinearOptions{.in = 3 * 49, .out = 4})});
    const Shape in{1, 2, size + 2, size + 2};  // the 3×3 conv takes 2 off
    if (size == 8) {
      EXPECT_THROW(export_graph(m, {.input_shape = in}), Error);
      continue;
    }
    ExportReport r;
    export_bytes(m, {.input_shape = in, .dynamic_batch = true}, &r);
    EXPECT_LE(r.verify_error, 1e-5) << size;
  }
}

int64_t count_batch_norms(nn::Module& m) {
  int64_t n = 0;
  for (auto& [_, c] : m.named_modules()) n += dynamic_cast<nn::BatchNorm*>(c.get()) != nullptr;
  return n;
}

TEST(OnnxExport, FoldsBatchNormsAfterConvOnlyWhereAsked) {
  auto m = make_model("resnet18", 3, 10, 32);
  const int64_t bns = count_batch_norms(*m);  // 20: one per conv, all directly after it
  ExportReport folded, kept;
  const Graph gf = export_graph(*m, {.input_shape = {1, 3, 32, 32}}, &folded);
  const Graph gk = export_graph(*m, {.input_shape = {1, 3, 32, 32}, .fold_batch_norm = false}, &kept);
  EXPECT_EQ(bns, 20);
  EXPECT_EQ(folded.folded_batch_norms, bns);
  EXPECT_EQ(folded.op_counts.count("BatchNormalization"), 0u);
  EXPECT_EQ(kept.op_counts["BatchNormalization"], bns);
  EXPECT_EQ(kept.folded_batch_norms, 0);
  EXPECT_EQ(folded.op_counts["Conv"], kept.op_counts["Conv"]);
  // Folded convs gain a bias named after the conv: "layer1.0.conv1.bias".
  std::set<std::string> names;
  for (const auto& [n, _] : gf.initializers) names.insert(n);
  EXPECT_TRUE(names.count("layer1.0.conv1.bias"));
  EXPECT_FALSE(names.count("layer1.0.bn1.running_mean"));
  // Both verify (export_bytes throws otherwise).
  ExportReport rf, rk;
  export_bytes(*m, {.input_shape = {2, 3, 32, 32}}, &rf);
  export_bytes(*m, {.input_shape = {2, 3, 32, 32}, .fold_batch_norm = false}, &rk);
  EXPECT_LE(rf.verify_error, 1e-5);
  EXPECT_LE(rk.verify_error, 1e-5);
}

TEST(OnnxExport, DenseNetKeepsTheBatchNormsThatPrecedeTheirConv) {
  auto m = make_model("densenet121", 3, 10, 32);
  ExportReport r;
  export_graph(*m, {.input_shape = {1, 3, 32, 32}}, &r);
  // Only the bottleneck BN (norm2, after conv1) of each of the 58 dense layers follows a conv;
  // the stem's norm0 too.
  EXPECT_EQ(r.folded_batch_norms, 58 + 1);
  EXPECT_EQ(r.op_counts["BatchNormalization"], count_batch_norms(*m) - 59);
}

TEST(OnnxExport, InitializersAreTheStateDictUnderItsNames) {
  auto m = make_model("resnet20_b", 3, 10, 32);
  const Graph g = export_graph(*m, {.input_shape = {1, 3, 32, 32}, .fold_batch_norm = false});
  std::map<std::string, Tensor> expect = m->state_dict();
  std::erase_if(expect, [](const auto& kv) { return kv.first.find("num_batches_tracked") != std::string::npos; });
  ASSERT_EQ(g.initializers.size(), expect.size());
  for (const auto& [name, t] : g.initializers) {
    ASSERT_TRUE(expect.count(name)) << name;
    EXPECT_EQ(t.to_vector(), expect[name].to_vector()) << name;
  }
}

TEST(OnnxExport, BatchDimIsSymbolicOnlyWhenDynamic) {
  auto m = make_model("resnet20", 3, 10, 32);
  const Graph d = export_graph(*m, {.input_shape = {4, 3, 32, 32}, .dynamic_batch = true});
  const Graph s = export_graph(*m, {.input_shape = {4, 3, 32, 32}, .input_name = "images", .output_name = "logits"});
  EXPECT_EQ(d.inputs[0].dim_params[0], "batch");
  EXPECT_EQ(d.outputs[0].dim_params[0], "batch");
  EXPECT_EQ(s.inputs[0].name, "images");
  EXPECT_EQ(s.outputs[0].name, "logits");
  EXPECT_EQ(s.inputs[0].dims, (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_EQ(s.inputs[0].dim_params[0], "");
  EXPECT_EQ(s.outputs[0].dims, (std::vector<int64_t>{4, 10}));
}

TEST(OnnxExport, LayerNormIsOneOpFromOpset17AndDecomposedBefore) {
  auto m = make_model("rowformer:norm=pre,dim=16,depth=1,heads=2,ff=32", 1, 10, 8);
  ExportReport r17, r13;
  export_bytes(*m, {.input_shape = {1, 1, 8, 8}, .opset = 17}, &r17);
  export_bytes(*m, {.input_shape = {1, 1, 8, 8}, .opset = 13}, &r13);
  EXPECT_EQ(r17.op_counts["LayerNormalization"], 3);  // norm1, norm2, final norm
  EXPECT_EQ(r13.op_counts.count("LayerNormalization"), 0u);
  EXPECT_EQ(r17.op_counts["ReduceMean"], 1);  // the head's mean over rows
  EXPECT_EQ(r13.op_counts["ReduceMean"], 1 + 2 * 3);
  EXPECT_LE(r13.verify_error, 1e-5);
  EXPECT_THROW(export_graph(*m, {.input_shape = {1, 1, 8, 8}, .opset = 12}), Error);
  EXPECT_THROW(export_graph(*m, {.input_shape = {1, 1, 8, 8}, .opset = 18}), Error);
}

// A module with no ONNX form, and one whose form is wrong.
struct Opaque : nn::Module {
  std::string type_name() const override { return "Opaque"; }
  Tensor forward(const Tensor& x) override { return x; }
};
struct Liar : nn::Module {
  std::string type_name() const override { return "Liar"; }
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override { return g.op1("Tanh", {x}); }
};

TEST(OnnxExport, ErrorsNameTheModuleAndItsPath) {
  auto inner = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<Opaque>()});
  nn::Sequential m({std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4, .out = 4}), inner});
  try {
    export_graph(m, {.input_shape = {2, 4}});
    FAIL() << "exported a module without an ONNX form";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot export Opaque"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in module '1.0'"), std::string::npos) << e.what();
  }
  nn::Sequential wrong({std::make_shared<Liar>()});
  try {
    export_bytes(wrong, {.input_shape = {2, 4}});
    FAIL() << "a wrong ONNX form passed the export check";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("disagrees with the model"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(export_bytes(wrong, {.input_shape = {2, 4}, .verify = false}));
  blocks::TransformerDecoder dec({.layer = {.dim = 8, .heads = 2}});
  EXPECT_THROW(export_graph(dec, {.input_shape = {1, 3, 8}}), Error);
  auto f64 = make_model("resnet20", 3, 10, 32);
  f64->to(DType::f64);
  EXPECT_THROW(export_graph(*f64, {.input_shape = {1, 3, 32, 32}}), Error);
  EXPECT_THROW(export_graph(*f64, {.input_shape = {}}), Error);
}

TEST(OnnxExport, RestoresTrainingModeAndLeavesTheModelUntouched) {
  auto m = make_model("resnet20", 3, 10, 32);
  m->train();
  // Values, not state_dict()'s tensors: those share storage with the model and would change with it.
  std::map<std::string, std::vector<double>> before;
  for (auto& [name, t] : m->state_dict()) before[name] = t.to_vector();
  export_bytes(*m, {.input_shape = {1, 3, 32, 32}});
  EXPECT_TRUE(m->is_training());
  for (auto& [_, c] : m->named_modules()) EXPECT_TRUE(c->is_training());
  for (auto& [name, t] : m->state_dict()) EXPECT_EQ(t.to_vector(), before.at(name)) << name;
}

}  // namespace
}  // namespace resin::onnx
