// Import robustness: mutated, truncated and hostile .onnx files give resin::Error (or a model that
// runs), never a crash, an out-of-bounds access (run under -DRESIN_SANITIZE=ON to check) or an
// exhausted memory.
#include <functional>

#include "../onnx/onnx_test_util.h"

namespace resin::onnx {
namespace {

using testing::make_model;

// Flips bytes, truncates, overwrites a window or duplicates a chunk; deterministic per round.
std::string mutate(std::string v, Generator& g) {
  const uint64_t kind = g.below(5);
  auto pos = [&](size_t n) { return static_cast<size_t>(g.below(n + 1)); };
  if (kind == 0 || kind == 4) {
    const uint64_t flips = 1 + g.below(4);
    for (uint64_t f = 0; f < flips && !v.empty(); ++f) {
      // Half the flips near the start, where the graph's structure (not weight bytes) lives.
      const size_t limit = g.below(2) ? std::min<size_t>(v.size(), 2048) : v.size();
      v[g.below(limit)] ^= static_cast<char>(1 + g.below(255));
    }
  }
  if (kind == 1 || kind == 4) v.resize(pos(v.size()));
  if (kind == 2 && !v.empty()) {
    const size_t at = g.below(v.size()), len = std::min<size_t>(1 + g.below(8), v.size() - at);
    for (size_t i = 0; i < len; ++i) v[at + i] = static_cast<char>(g.below(256));
  }
  if (kind == 3 && !v.empty()) {
    const size_t from = g.below(v.size()), len = std::min<size_t>(1 + g.below(64), v.size() - from);
    v.insert(pos(v.size()), v.substr(from, len));
  }
  return v;
}

// Mutants may ask for large but legal tensors (a pad of 2^20); a low limit keeps the rounds fast.
struct SmallLimit {
  int64_t saved = element_limit();
  SmallLimit() { set_element_limit(int64_t{1} << 16); }
  ~SmallLimit() { set_element_limit(saved); }
};

struct Outcomes {
  int import_error = 0, run_error = 0, ran = 0;
};

// Imports and, if that succeeds, runs; only resin::Error may escape.
void import_and_run(const std::string& bytes, const Tensor& x, int round, Outcomes& o) {
  bool imported = false;
  try {
    auto g = OnnxGraph::from_bytes(bytes, "mutant");
    imported = true;
    if (g->inputs().size() == 1) g->forward(x);
    ++o.ran;
  } catch (const Error&) {
    ++(imported ? o.run_error : o.import_error);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "round " << round << ": non-resin exception: " << e.what();
  }
}

void import_and_run_graph(const Graph& graph, const Tensor& x, int round, Outcomes& o) {
  bool imported = false;
  try {
    auto g = std::make_shared<OnnxGraph>(graph, "mutant");
    imported = true;
    g->forward(x);
    ++o.ran;
  } catch (const Error&) {
    ++(imported ? o.run_error : o.import_error);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "round " << round << ": non-resin exception: " << e.what();
  }
}

TEST(OnnxFuzz, MutatedModelsGiveErrorsNotCrashes) {
  SmallLimit limit;
  const std::vector<std::pair<std::string, Shape>> models = {
      {"rescnn:n=1,width=4,placement=full_preact,mix=exclusive_gate", {1, 2, 8, 8}},
      {"rowformer:norm=pre,dim=8,depth=1,heads=2,ff=16,act=gelu", {1, 1, 4, 4}},
      {"vit:patch=2,dim=8,depth=1,heads=2,ff=16", {1, 1, 4, 4}}};
  Generator g(2026);
  for (const auto& [spec, shape] : models) {
    Outcomes o;
    auto m = make_model(spec, shape[1], 3, shape[2]);
    const std::string valid = export_bytes(*m, {.input_shape = shape, .fold_batch_norm = false});
    const Tensor x = randn(shape);
    import_and_run(valid, x, -1, o);
    ASSERT_EQ(o.ran, 1) << spec;
    o = {};
    for (int round = 0; round < 300; ++round) import_and_run(mutate(valid, g), x, round, o);
    // Every truncation point in the first kilobyte (headers, node list).
    for (size_t n = 0; n < std::min<size_t>(valid.size(), 1024); n += 7) import_and_run(valid.substr(0, n), x, -2, o);
    std::cout << "[ fuzz ] " << spec << ": " << o.import_error << " rejected at import, " << o.run_error
              << " failed while running, " << o.ran << " ran\n";
    // The mutants reach every stage: the parser, the interpreter's checks and the ops.
    EXPECT_GT(o.import_error, 0);
    EXPECT_GT(o.run_error + o.ran, 10);
  }
}

// Structure-aware: parsed graphs with one attribute value, initializer or node input replaced by
// something hostile, run without onnx::checker in front.
TEST(OnnxFuzz, MutatedAttributesAndWiringGiveErrorsNotCrashes) {
  SmallLimit limit;
  auto m = make_model("rescnn:n=1,width=4,placement=full_preact,mix=carry_gate", 2, 3, 8);
  const Graph valid = parse_model(export_bytes(*m, {.input_shape = {1, 2, 8, 8}, .fold_batch_norm = false}), "valid");
  const Tensor x = randn({1, 2, 8, 8});
  const int64_t specials[] = {-1, 0, 1, 2, 3, 7, 1 << 20, INT64_MAX, INT64_MIN, -1000000};
  Generator g(7);
  Outcomes o;
  for (int round = 0; round < 400; ++round) {
    Graph mg = valid;
    Node& n = mg.nodes[g.below(mg.nodes.size())];
    auto value = [&] { return g.below(2) ? specials[g.below(std::size(specials))] : static_cast<int64_t>(g.below(9)) - 4; };
    const uint64_t kind = g.below(3);
    if (kind == 0 && !n.attrs.empty()) {
      auto& a = n.attrs[g.below(n.attrs.size())].value;
      if (auto* i = std::get_if<int64_t>(&a)) *i = value();
      if (auto* v = std::get_if<std::vector<int64_t>>(&a)) {
        if (g.below(4) == 0) v->resize(g.below(6));
        for (auto& e : *v) e = g.below(2) ? value() : e;
      }
      if (auto* t = std::get_if<Tensor>(&a); t && t->dtype() == DType::i64 && t->numel() > 0) {
        *t = t->clone();  // the copy of the graph shares tensors with the original
        t->data<int64_t>()[g.below(static_cast<uint64_t>(t->numel()))] = value();
      }
    } else if (kind == 1) {
      auto& [_, t] = mg.initializers[g.below(mg.initializers.size())];
      t = t.numel() > 1 && g.below(2) ? t.reshape({t.numel()}) : randn({static_cast<int64_t>(1 + g.below(5))});
    } else if (!n.inputs.empty()) {  // rewire an input to another defined value
      const Node& other = mg.nodes[g.below(static_cast<uint64_t>(&n - mg.nodes.data()) + 1)];
      n.inputs[g.below(n.inputs.size())] = &other == &n ? "x" : other.outputs[0];
    }
    import_and_run_graph(mg, x, round, o);
  }
  std::cout << "[ fuzz ] attributes and wiring: " << o.import_error << " rejected, " << o.run_error
            << " failed while running, " << o.ran << " ran\n";
  EXPECT_GT(o.run_error, 100);
  EXPECT_GT(o.ran, 50);
}

// Well-formed graphs with hostile values, built directly (so onnx::checker cannot pre-empt them).
Graph graph_of(const std::string& op, const Shape& x, std::vector<nn::OnnxAttr> attrs,
               std::vector<std::pair<std::string, Tensor>> inits, size_t outputs = 1, DType dtype = DType::f32) {
  Graph g;
  g.inputs.push_back({.name = "x", .dtype = dtype, .dims = x.vec(), .dim_params = std::vector<std::string>(x.size())});
  Node n{.op = op, .name = "hostile", .inputs = {"x"}, .outputs = {}, .attrs = std::move(attrs)};
  for (auto& [name, _] : inits) n.inputs.push_back(name);
  for (size_t i = 0; i < outputs; ++i) {
    n.outputs.push_back("y" + std::to_string(i));
    g.outputs.push_back({.name = n.outputs.back(), .dtype = DType::f32, .dims = {}, .dim_params = {}, .has_shape = false});
  }
  g.initializers = std::move(inits);
  g.nodes.push_back(n);
  return g;
}

TEST(OnnxFuzz, HostileValuesGiveErrors) {
  using Ints = std::vector<int64_t>;
  auto i64 = [](Ints v) { return from_data(v, Shape{static_cast<int64_t>(v.size())}); };
  const Tensor w = randn({2, 2, 3, 3});
  const std::vector<std::pair<const char*, Graph>> cases = {
      {"huge pad", graph_of("Pad", {1, 2}, {}, {{"p", i64({0, 0, 1 << 20, 1 << 20})}})},
      {"pad overflow", graph_of("Pad", {1, 2}, {}, {{"p", i64({0, 0, INT64_MAX, 1})}})},
      {"huge expand", graph_of("Expand", {1, 1}, {}, {{"s", i64({1 << 20, 1 << 20})}})},
      {"huge constant", graph_of("ConstantOfShape", {2}, {}, {}, 1, DType::i64)},
      {"conv pads", graph_of("Conv", {1, 2, 4, 4}, {{"pads", Ints{1 << 30, 0, 0, 0}}}, {{"w", w}})},
      {"conv huge output",
       graph_of("Conv", {1, 2, 4, 4}, {{"pads", Ints{60000, 60000, 60000, 60000}}}, {{"w", w}})},
      {"conv dilation",
       graph_of("Conv", {1, 2, 4, 4}, {{"dilations", Ints{int64_t{1} << 40, 1}}}, {{"w", w}})},
      {"conv groups", graph_of("Conv", {1, 2, 4, 4}, {{"group", int64_t{3}}}, {{"w", w}})},
      {"pool kernel", graph_of("MaxPool", {1, 2, 4, 4}, {{"kernel_shape", Ints{5, 5}}}, {})},
      {"pool no kernel", graph_of("AveragePool", {1, 2, 4, 4}, {}, {})},
      {"reshape", graph_of("Reshape", {2, 3}, {}, {{"s", i64({-1, -1})}})},
      {"reshape copy", graph_of("Reshape", {2, 3}, {}, {{"s", i64({0, 0, 0})}})},
      // The product of these sizes wraps around to 6 in int64 arithmetic.
      {"reshape overflow",
       graph_of("Reshape", {2, 3}, {}, {{"s", i64({6, 4294967297, 4294967295, 4294967297, 4294967295})}})},
      {"reshape below -1", graph_of("Reshape", {2, 3}, {}, {{"s", i64({-6, -1})}})},
      {"gather index", graph_of("Gather", {2, 3}, {}, {{"i", i64({0, 5})}})},
      {"gather axis", graph_of("Gather", {2, 3}, {{"axis", int64_t{7}}}, {{"i", i64({0})}})},
      {"concat axis", graph_of("Concat", {2, 3}, {{"axis", int64_t{-9}}}, {})},
      {"split sizes", graph_of("Split", {2, 3}, {{"axis", int64_t{1}}}, {{"s", i64({1, 5})}}, 2)},
      // Sizes whose sum wraps around to the dim's 3.
      {"split overflow",
       graph_of("Split", {2, 3}, {{"axis", int64_t{1}}}, {{"s", i64({1, INT64_MAX, INT64_MAX, 4})}}, 4)},
      {"gemm c broadcast", graph_of("Gemm", {2, 3}, {}, {{"b", randn({3, 4})}, {"c", zeros({5, 2, 4})}})},
      {"slice step",
       graph_of("Slice", {2, 3}, {}, {{"a", i64({0})}, {"b", i64({2})}, {"c", i64({0})}, {"d", i64({0})}})},
      {"transpose perm", graph_of("Transpose", {2, 3}, {{"perm", Ints{0, 0}}}, {})},
      {"squeeze", graph_of("Squeeze", {2, 3}, {}, {{"a", i64({0})}})},
      {"unsqueeze", graph_of("Unsqueeze", {2, 3}, {}, {{"a", i64({5})}})},
      {"flatten axis", graph_of("Flatten", {2, 3}, {{"axis", int64_t{4}}}, {})},
      {"matmul outer", graph_of("MatMul", {40000, 1}, {}, {{"b", zeros({1, 40000})}})},
      {"softmax axis", graph_of("Softmax", {2, 3}, {{"axis", int64_t{3}}}, {})},
      {"layernorm axis", graph_of("LayerNormalization", {2, 3}, {{"axis", int64_t{2}}}, {{"s", ones({3})}})},
      {"batchnorm size", graph_of("BatchNormalization", {2, 3}, {},
                                  {{"s", ones({2})}, {"b", ones({3})}, {"m", ones({3})}, {"v", ones({3})}})},
      {"missing input", graph_of("Add", {2, 3}, {}, {})},
      {"cast type", graph_of("Cast", {2, 3}, {{"to", int64_t{3}}}, {})},  // INT8
      {"unsupported output", graph_of("Relu", {2, 3}, {}, {}, 2)},
  };
  auto expect_error = [&](const char* what, const Graph& graph) {
    const Tensor x = graph.inputs[0].dtype == DType::i64 ? i64({1 << 20, 1 << 20}) : randn(Shape(graph.inputs[0].dims));
    try {
      auto g = std::make_shared<OnnxGraph>(graph, what);
      g->run({x});
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("node 'hostile'"), std::string::npos) << what << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": non-resin exception " << e.what();
    }
  };
  for (const auto& [what, graph] : cases) expect_error(what, graph);
  // Broadcasting scale that would make LayerNormalization's output [2^15, 2, 3], over the limit.
  SmallLimit small;
  expect_error("layernorm broadcast", graph_of("LayerNormalization", {2, 3}, {}, {{"s", ones({1 << 15, 1, 3})}}));
}

// Protobuf wire format, for files that resin's own serializer would never write.
std::string varint(uint64_t v) {
  std::string s;
  for (; v >= 0x80; v >>= 7) s += static_cast<char>((v & 0x7f) | 0x80);
  return s + static_cast<char>(v);
}
std::string int_field(uint32_t number, uint64_t v) { return varint(number << 3) + varint(v); }
std::string bytes_field(uint32_t number, const std::string& payload) {
  return varint(number << 3 | 2) + varint(payload.size()) + payload;
}

TEST(OnnxFuzz, TensorsWithoutTheirValuesAreRejectedBeforeAllocating) {
  // TensorProto {dims: 2^40, data_type: FLOAT, name: "big"} and no values: 4 TiB if allocated.
  const std::string big = int_field(1, uint64_t{1} << 40) + int_field(2, 1) + bytes_field(8, "big");
  auto expect_count_error = [](const std::function<void()>& f) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("0 values stored"), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-resin exception " << e.what();
    }
  };
  expect_count_error([&] { parse_tensor(big, "big.pb"); });
  // A valid model with the tensor appended as one more initializer (ModelProto.graph is field 7,
  // GraphProto.initializer field 5; protobuf merges a repeated message field).
  Graph relu = graph_of("Relu", {2, 3}, {}, {});
  relu.outputs[0] = relu.inputs[0];
  relu.outputs[0].name = "y0";
  const std::string model = serialize_model(relu) + bytes_field(7, bytes_field(5, big));
  expect_count_error([&] { OnnxGraph::from_bytes(model, "big.onnx"); });
}

}  // namespace
}  // namespace resin::onnx
