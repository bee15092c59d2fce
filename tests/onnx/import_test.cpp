// ONNX import: exported models come back with their state dict and output, train with the same
// gradients as the original modules, and bad graphs fail with errors that name the op and node.
#include "../support/error_of.h"
#include "onnx_test_util.h"
#include "resin/onnx/ops.h"

namespace resin::onnx {
namespace {

using resin::testing::error_of;
using testing::make_model;
using testing::relative_error;

std::map<std::string, Tensor> without_counters(std::map<std::string, Tensor> s) {
  std::erase_if(s, [](const auto& kv) { return kv.first.find("num_batches_tracked") != std::string::npos; });
  return s;
}

std::shared_ptr<OnnxGraph> round_trip(nn::Module& m, const Shape& input) {
  return OnnxGraph::from_bytes(export_bytes(m, {.input_shape = input, .dynamic_batch = true, .fold_batch_norm = false}),
                               "round trip");
}

TEST(OnnxImport, RoundTripRestoresStateDictAndOutput) {
  auto m = make_model("resnet20_b", 3, 10, 32);
  auto g = round_trip(*m, {1, 3, 32, 32});
  const auto expect = without_counters(m->state_dict());
  const auto got = g->state_dict();
  ASSERT_EQ(got.size(), expect.size());
  for (const auto& [name, t] : expect) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(got.at(name).to_vector(), t.to_vector()) << name;
  }
  // Running statistics are buffers; weights and BN affine parameters train.
  EXPECT_EQ(g->parameter_count(), m->parameter_count());
  for (const auto& [name, _] : g->named_buffers())
    EXPECT_TRUE(name.find("running_") != std::string::npos) << name;
  const Tensor x = randn({3, 3, 32, 32});
  EXPECT_LE(relative_error(g->forward(x), m->forward(x)), 1e-6);
  // New weights load by name.
  auto other = make_model("resnet20_b", 3, 10, 32);
  g->load_state_dict(without_counters(other->state_dict()));
  EXPECT_LE(relative_error(g->forward(x), other->forward(x)), 1e-6);
  EXPECT_GT(relative_error(g->forward(x), m->forward(x)), 1e-3);
  EXPECT_EQ(g->op_counts()["Conv"], 19 + 2);  // 19 in the stem and units, 2 projections
  EXPECT_EQ(g->opset(), 17);
  EXPECT_EQ(g->producer(), "resin");
}

struct TuneCase {
  std::string model;
  int64_t in, image;
};
std::ostream& operator<<(std::ostream& os, const TuneCase& c) { return os << c.model; }
class FineTune : public ::testing::TestWithParam<TuneCase> {};

// One training step through the imported graph equals one through the module: same loss, same
// gradient for every parameter, same BatchNorm running statistics afterwards.
TEST_P(FineTune, ImportedGraphTrainsLikeTheModule) {
  const TuneCase& c = GetParam();
  auto m = make_model(c.model, c.in, 10, c.image);
  auto g = round_trip(*m, {1, c.in, c.image, c.image});
  m->train();
  g->train();
  const Tensor x = randn({4, c.in, c.image, c.image});
  const Tensor target = from_data<int64_t>({1, 7, 3, 3}, {4});
  Tensor lm = cross_entropy(m->forward(x), target);
  Tensor lg = cross_entropy(g->forward(x), target);
  EXPECT_NEAR(lg.item(), lm.item(), 1e-5 * std::abs(lm.item()));
  lm.backward();
  lg.backward();
  std::map<std::string, Tensor> gp;
  for (auto& [name, p] : g->named_parameters()) gp[name] = p;
  // Per parameter, relative to its own largest gradient; parameters whose gradient is zero in
  // exact arithmetic (a bias right before a training-mode BN) are compared to the model's largest.
  double global = 0;
  for (auto& [_, p] : m->named_parameters()) global = std::max(global, testing::max_abs(p.grad()));
  int64_t checked = 0;
  for (auto& [name, p] : m->named_parameters()) {
    ASSERT_TRUE(gp.count(name)) << name;
    ASSERT_TRUE(gp[name].grad().defined()) << name << " got no gradient";
    const double scale = std::max(testing::max_abs(p.grad()), 1e-3 * global);
    EXPECT_LE(relative_error(gp[name].grad(), p.grad()) * testing::max_abs(p.grad()) / scale, 1e-4) << name;
    ++checked;
  }
  EXPECT_GT(checked, 0);
  const auto gb = g->state_dict();
  for (auto& [name, b] : without_counters(m->state_dict()))
    if (name.find("running_") != std::string::npos) {
      EXPECT_LE(relative_error(gb.at(name), b), 1e-5) << name;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Models, FineTune,
    ::testing::Values(TuneCase{"resnet20_b", 3, 16}, TuneCase{"resnet20", 1, 16},
                      TuneCase{"resmlp:width=16,blocks=2,placement=full_preact,act=gelu", 1, 6},
                      TuneCase{"resmlp:width=16,blocks=2,placement=ln_pre,mix=carry_gate", 1, 6},
                      TuneCase{"rowformer:norm=pre,dim=16,depth=2,heads=2,ff=32", 1, 6},
                      TuneCase{"vit:patch=2,dim=8,depth=1,heads=2,ff=16", 1, 4},
                      TuneCase{"densenet40_k12", 1, 8}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

// A one-node graph x [2, 3] -> op -> y.
Graph one_node_graph(const std::string& op, const std::string& name, std::vector<nn::OnnxAttr> attrs = {},
                     std::vector<std::pair<std::string, Tensor>> inits = {}, int64_t opset = 17) {
  Graph g;
  g.opset = opset;
  g.inputs.push_back({.name = "x", .dtype = DType::f32, .dims = {2, 3}, .dim_params = {"", ""}});
  g.outputs.push_back({.name = "y", .dtype = DType::f32, .dims = {-1}, .dim_params = {"n"}});
  Node n{.op = op, .name = name, .inputs = {"x"}, .outputs = {"y"}, .attrs = std::move(attrs)};
  for (auto& [iname, _] : inits) n.inputs.push_back(iname);
  g.initializers = std::move(inits);
  g.nodes.push_back(n);
  return g;
}
std::string one_node(const std::string& op, const std::string& name, std::vector<nn::OnnxAttr> attrs = {},
                     std::vector<std::pair<std::string, Tensor>> inits = {}, int64_t opset = 17) {
  return serialize_model(one_node_graph(op, name, std::move(attrs), std::move(inits), opset));
}

TEST(OnnxImport, UnsupportedOpsAndFailingNodesAreNamed) {
  const std::string hard = one_node("Hardmax", "my_hardmax");
  const std::string e1 = error_of([&] { OnnxGraph::from_bytes(hard, "h.onnx"); });
  EXPECT_NE(e1.find("unsupported ONNX op 'Hardmax' in node 'my_hardmax'"), std::string::npos) << e1;
  EXPECT_NE(e1.find("h.onnx"), std::string::npos) << e1;
  const std::string bad = one_node("Reshape", "bad_reshape", {}, {{"shape", from_data<int64_t>({5}, {1})}});
  auto g = OnnxGraph::from_bytes(bad);
  const std::string e2 = error_of([&] { g->forward(randn({2, 3})); });
  EXPECT_NE(e2.find("node 'bad_reshape' (Reshape)"), std::string::npos) << e2;
  // Inputs: count, dtype, fixed dims.
  auto ok = OnnxGraph::from_bytes(one_node("Relu", "r"));
  EXPECT_EQ(ok->forward(from_data<float>({-1, 2, -3, 4, 0, 1}, {2, 3})).to_vector(),
            (std::vector<double>{0, 2, 0, 4, 0, 1}));
  EXPECT_THROW(ok->forward(randn({3, 3})), Error);
  EXPECT_THROW(ok->forward(randn({2, 3}, {.dtype = DType::f64})), Error);
  EXPECT_THROW(ok->run({}), Error);
  // Attribute types are checked when the node runs (onnx::checker rejects this file already).
  EXPECT_THROW(one_node("LeakyRelu", "lr", {{"alpha", std::string("big")}}), Error);
  auto wrong = std::make_shared<OnnxGraph>(one_node_graph("LeakyRelu", "lr", {{"alpha", std::string("big")}}), "g");
  EXPECT_NE(error_of([&] { wrong->forward(randn({2, 3})); }).find("attribute 'alpha' must be of type FLOAT"),
            std::string::npos);
}

TEST(OnnxImport, RejectsFilesItCannotRead) {
  EXPECT_THROW(OnnxGraph::from_bytes("this is not a protobuf"), Error);
  EXPECT_THROW(OnnxGraph::from_bytes(""), Error);  // parses as an empty model: no graph
  EXPECT_THROW(OnnxGraph::load("/nonexistent/model.onnx"), Error);
  const std::string old = one_node("Relu", "r", {}, {}, 6);
  EXPECT_NE(error_of([&] { OnnxGraph::from_bytes(old); }).find("opset 6 is not supported for op 'Relu'"),
            std::string::npos);
  EXPECT_NO_THROW(OnnxGraph::from_bytes(one_node("Relu", "r", {}, {}, 7)));
  EXPECT_NO_THROW(OnnxGraph::from_bytes(one_node("Identity", "i", {}, {}, 1)));
}

// One node run directly on the given inputs; its first output.
Tensor run_one(const std::string& op, std::vector<nn::OnnxAttr> attrs, const std::vector<Tensor>& in) {
  Node n{.op = op, .name = "n", .inputs = {}, .outputs = {"y"}, .attrs = std::move(attrs)};
  for (size_t i = 0; i < in.size(); ++i) n.inputs.push_back("x" + std::to_string(i));
  return run_node(n, in, 17, false).at(0);
}
Tensor i64s(std::vector<int64_t> v) { return from_data(v, Shape{static_cast<int64_t>(v.size())}); }

// Shape arithmetic, gathers and constants on integers are exact beyond 2^53, where a double rounds
// (and INT64_MAX would become 2^63, out of range).
TEST(OnnxImport, IntegerValuesStayExact) {
  using V = std::vector<int64_t>;
  const int64_t big = (int64_t{1} << 53) + 1;
  EXPECT_EQ(run_one("Add", {}, {i64s({INT64_MAX - 1, big}), i64s({1, 0})}).values<int64_t>(), (V{INT64_MAX, big}));
  EXPECT_EQ(run_one("Mul", {}, {i64s({big}), i64s({-1})}).values<int64_t>(), V{-big});
  EXPECT_EQ(run_one("Gather", {}, {i64s({big, INT64_MAX}), i64s({1, 0})}).values<int64_t>(), (V{INT64_MAX, big}));
  const Tensor c = run_one("Constant", {{"value_int", int64_t{INT64_MAX}}}, {});
  EXPECT_EQ(c.dtype(), DType::i64);
  EXPECT_EQ(c.dim(), 0);
  EXPECT_EQ(c.values<int64_t>(), V{INT64_MAX});
  const Tensor f = run_one("ConstantOfShape", {{"value", i64s({big})}}, {i64s({2, 2})});
  EXPECT_EQ(f.shape(), Shape({2, 2}));
  EXPECT_EQ(f.values<int64_t>(), V(4, big));
  // i32 max pooling above 2^24, where f32 rounds.
  const int32_t odd = (1 << 24) + 1;
  const Tensor p = run_one("MaxPool", {{"kernel_shape", V{2, 2}}}, {from_data(std::vector<int32_t>{odd, 1, 2, 3}, {1, 1, 2, 2})});
  EXPECT_EQ(p.dtype(), DType::i32);
  EXPECT_EQ(p.values<int32_t>(), std::vector<int32_t>{odd});
}

TEST(OnnxImport, FlattenAndPadShapes) {
  // A zero leading product keeps the trailing one: [0, 2, 3] at axis 1 is [0, 6].
  EXPECT_EQ(run_one("Flatten", {{"axis", int64_t{1}}}, {zeros({0, 2, 3})}).shape(), Shape({0, 6}));
  EXPECT_EQ(run_one("Flatten", {{"axis", int64_t{2}}}, {zeros({2, 0, 3})}).shape(), Shape({0, 3}));
  // Edge and reflect padding, uneven pads on two dims: [[1, 2, 3]] with 1/0 rows and 2/1 columns.
  const Tensor x = from_data(std::vector<float>{1, 2, 3}, {1, 3});
  const Tensor pads = i64s({1, 2, 0, 1});
  EXPECT_EQ(run_one("Pad", {{"mode", std::string("edge")}}, {x, pads}).to_vector(),
            (std::vector<double>{1, 1, 1, 2, 3, 3, 1, 1, 1, 2, 3, 3}));
  EXPECT_EQ(run_one("Pad", {{"mode", std::string("reflect")}}, {x, i64s({0, 2, 0, 1})}).to_vector(),
            (std::vector<double>{3, 2, 1, 2, 3, 2}));
  EXPECT_THROW(run_one("Pad", {{"mode", std::string("reflect")}}, {x, i64s({0, 3, 0, 0})}), Error);
}

TEST(OnnxImport, InitializerNamesBecomeStateDictKeys) {
  Graph g;
  g.inputs.push_back({.name = "x", .dtype = DType::f32, .dims = {2, 3}, .dim_params = {"", ""}});
  g.outputs.push_back({.name = "y", .dtype = DType::f32, .dims = {2, 3}, .dim_params = {"", ""}});
  g.initializers = {{"block.0.scale", full({3}, 2.0)}, {"odd..name", full({3}, 1.0)}, {"flat", full({3}, 0.5)}};
  g.nodes.push_back({.op = "Mul", .name = "m", .inputs = {"x", "block.0.scale"}, .outputs = {"a"}, .attrs = {}});
  g.nodes.push_back({.op = "Add", .name = "b", .inputs = {"a", "odd..name"}, .outputs = {"c"}, .attrs = {}});
  g.nodes.push_back({.op = "Mul", .name = "c", .inputs = {"c", "flat"}, .outputs = {"y"}, .attrs = {}});
  auto net = OnnxGraph::from_bytes(serialize_model(g));
  std::vector<std::string> names;
  for (auto& [n, _] : net->named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"odd__name", "flat", "block.0.scale"}));
  EXPECT_EQ(net->forward(ones({2, 3})).to_vector(), std::vector<double>(6, 1.5));
}

}  // namespace
}  // namespace resin::onnx
