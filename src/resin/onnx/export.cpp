#include "resin/onnx/export.h"

#include <cmath>
#include <set>
#include <unordered_map>

#include "resin/autograd/grad_mode.h"
#include "resin/io/atomic_file.h"
#include "resin/nn/rewrite.h"
#include "resin/onnx/import.h"
#include "resin/onnx/ops.h"

namespace resin::onnx {

namespace {

constexpr const char* kPathTag = " [in module '";

// The OnnxEmitter behind Module::export_onnx: appends nodes to a Graph and runs each on the
// example values.
class GraphBuilder final : public nn::OnnxEmitter {
 public:
  GraphBuilder(Graph& g, nn::Module& root) : g_(g) {
    for (const auto& [name, t] : root.named_parameters()) names_.emplace(t.impl(), name);
    for (const auto& [name, t] : root.named_buffers()) names_.emplace(t.impl(), name);
    paths_[&root] = "";
    for (const auto& [path, m] : root.named_modules()) paths_.emplace(m.get(), path);
  }

  std::vector<nn::OnnxValue> op(const std::string& type, const std::vector<nn::OnnxValue>& inputs,
                                const std::vector<nn::OnnxAttr>& attrs, size_t outputs) override {
    Node n;
    n.op = type;
    const std::string scope = scope_.empty() || scope_.back().empty() ? "" : scope_.back() + "/";
    n.name = scope + type + "_" + std::to_string(counter_++);
    std::vector<Tensor> samples;
    for (const auto& v : inputs) {
      n.inputs.push_back(v.name);
      samples.push_back(v.sample);
    }
    for (size_t i = 0; i < outputs; ++i) n.outputs.push_back(outputs == 1 ? n.name : n.name + ":" + std::to_string(i));
    n.attrs = attrs;
    std::vector<Tensor> out = run_node(n, samples, g_.opset, false);
    g_.nodes.push_back(n);
    std::vector<nn::OnnxValue> values;
    for (size_t i = 0; i < outputs; ++i) values.push_back({n.outputs[i], out[i]});
    return values;
  }

  nn::OnnxValue param(const Tensor& t) override {
    auto it = t.defined() ? names_.find(t.impl()) : names_.end();
    RESIN_CHECK(it != names_.end(), "ONNX export: a tensor used as a parameter is not registered in the model");
    RESIN_CHECK(t.dtype() == DType::f32 || !is_floating(t.dtype()), "ONNX export: parameter '", it->second,
                "' is ", t.dtype(), "; export f32 models");
    if (added_.insert(it->second).second) g_.initializers.emplace_back(it->second, t);
    return {it->second, t};
  }

  nn::OnnxValue constant(const Tensor& t) override { return op1("Constant", {}, {{"value", t.contiguous()}}); }

  nn::OnnxValue module(nn::Module& m, const nn::OnnxValue& x) override {
    auto it = paths_.find(&m);
    RESIN_CHECK(it != paths_.end(), "ONNX export: a ", m.type_name(), " used in forward is not a registered child");
    scope_.push_back(it->second);
    struct Pop {
      std::vector<std::string>& s;
      ~Pop() { s.pop_back(); }
    } pop{scope_};
    try {
      return m.export_onnx(*this, x);
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.find(kPathTag) != std::string::npos || it->second.empty()) throw;
      RESIN_FAIL(msg, kPathTag, it->second, "' (", m.type_name(), ")]");
    }
  }

  int64_t opset() const override { return g_.opset; }

 private:
  Graph& g_;
  std::unordered_map<const TensorImpl*, std::string> names_;
  std::unordered_map<const nn::Module*, std::string> paths_;
  std::set<std::string> added_;
  std::vector<std::string> scope_;
  int64_t counter_ = 0;
};

// Puts every module in eval mode and restores each one's flag on scope exit.
class EvalGuard {
 public:
  explicit EvalGuard(nn::Module& root) {
    modes_.emplace_back(&root, root.is_training());
    for (const auto& [_, m] : root.named_modules()) modes_.emplace_back(m.get(), m->is_training());
    root.eval();
  }
  ~EvalGuard() {
    for (auto& [m, training] : modes_) m->train(training);  // pre-order: parents before children
  }

 private:
  std::vector<std::pair<nn::Module*, bool>> modes_;
};

ValueInfo value_info(const std::string& name, const Tensor& t, bool dynamic_batch) {
  ValueInfo v{.name = name, .dtype = t.dtype(), .dims = t.shape().vec(),
              .dim_params = std::vector<std::string>(static_cast<size_t>(t.dim()))};
  if (dynamic_batch && t.dim() > 0) v.dim_params[0] = "batch";
  return v;
}

}  // namespace

Graph export_graph(nn::Module& model, const ExportOptions& o, ExportReport* report) {
  RESIN_CHECK(o.opset >= 13 && o.opset <= kMaxOpset, "ONNX export: opset ", o.opset, " is not supported (13 to ",
              kMaxOpset, ")");
  RESIN_CHECK(!o.input_shape.empty(), "ONNX export: the example input shape is required");
  for (int64_t d : o.input_shape)
    RESIN_CHECK(d > 0, "ONNX export: invalid input shape ", o.input_shape);
  RESIN_CHECK(!o.input_name.empty() && !o.output_name.empty() && o.input_name != o.output_name,
              "ONNX export: input and output need distinct non-empty names");
  NoGradGuard ng;
  EvalGuard eval(model);
  Generator gen(o.seed);
  const Tensor x = randn(o.input_shape, {}, &gen);

  Graph g;
  g.opset = o.opset;
  g.ir_version = 8;
  g.producer_name = "resin";
  g.producer_version = "0.1.0";
  g.name = model.type_name();
  GraphBuilder b(g, model);
  nn::OnnxValue out = b.module(model, {o.input_name, x});
  RESIN_CHECK(out.sample.defined() && is_floating(out.sample.dtype()), "ONNX export: the model's output is not "
              "a floating tensor");
  // Name the output: rename the producing node's output, or copy when the output is the input or
  // an initializer.
  bool renamed = false;
  for (auto& n : g.nodes)
    for (auto& name : n.outputs)
      if (name == out.name) {
        name = o.output_name;
        renamed = true;
      }
  if (renamed) {
    for (auto& n : g.nodes)
      for (auto& name : n.inputs)
        if (name == out.name) name = o.output_name;
  } else {
    g.nodes.push_back({.op = "Identity", .name = "output_copy", .inputs = {out.name}, .outputs = {o.output_name}, .attrs = {}});
  }
  g.inputs.push_back(value_info(o.input_name, x, o.dynamic_batch));
  g.outputs.push_back(value_info(o.output_name, out.sample, o.dynamic_batch));
  ExportReport r;
  r.folded_batch_norms = o.fold_batch_norm ? fold_batch_norms(g) : 0;
  remove_unused(g);
  r.nodes = static_cast<int64_t>(g.nodes.size());
  r.initializers = static_cast<int64_t>(g.initializers.size());
  for (const auto& [_, t] : g.initializers) r.parameters += t.numel();
  for (const auto& n : g.nodes) ++r.op_counts[n.op];
  r.output_shape = out.sample.shape();
  if (report) *report = r;
  return g;
}

std::string export_bytes(nn::Module& model, const ExportOptions& o, ExportReport* report) {
  ExportReport r;
  const std::string bytes = serialize_model(export_graph(model, o, &r));
  r.bytes = bytes.size();
  if (o.verify) {
    NoGradGuard ng;
    EvalGuard eval(model);
    auto imported = OnnxGraph::from_bytes(bytes, "exported model");
    std::vector<Shape> checks{o.input_shape};
    if (o.dynamic_batch) {
      Shape other = o.input_shape;
      other[0] = o.input_shape[0] == 1 ? 2 : 1;
      checks.push_back(other);
    }
    Generator gen(o.seed + 1);
    r.verify_error = 0;
    for (const Shape& s : checks) {
      const Tensor x = randn(s, {}, &gen);
      const Tensor got = imported->forward(x), want = model.forward(x);
      RESIN_CHECK(got.shape() == want.shape(), "ONNX export check: the re-imported graph gives shape ", got.shape(),
                  ", the model ", want.shape());
      r.verify_error = std::max(r.verify_error, nn::relative_error(got, want));  // NaN counts as +inf
    }
    RESIN_CHECK(r.verify_error <= 1e-4, "ONNX export: the exported graph disagrees with the model (max error ",
                r.verify_error, " of the output's magnitude); please report this as a bug");
  }
  if (report) *report = r;
  return bytes;
}

ExportReport export_model(nn::Module& model, const std::string& path, const ExportOptions& o) {
  ExportReport r;
  const std::string bytes = export_bytes(model, o, &r);
  io::atomic_write_file(path, bytes);
  return r;
}

}  // namespace resin::onnx
