#include "resin/onnx/import.h"

#include <set>

#include "resin/io/atomic_file.h"
#include "resin/onnx/ops.h"

namespace resin::onnx {

namespace {

// Holds the initializers under one component of their dotted names; never run.
class ParamHolder : public nn::Module {
 public:
  std::string type_name() const override { return "OnnxParams"; }
  Tensor forward(const Tensor&) override { RESIN_FAIL("OnnxParams holds initializers and is not callable"); }
};

std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    const size_t dot = name.find('.', pos);
    parts.push_back(name.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) return parts;
    pos = dot + 1;
  }
}

}  // namespace

std::shared_ptr<OnnxGraph> OnnxGraph::load(const std::string& path) {
  return from_bytes(io::read_file(path), path);
}

std::shared_ptr<OnnxGraph> OnnxGraph::from_bytes(const std::string& bytes, const std::string& source) {
  return std::make_shared<OnnxGraph>(parse_model(bytes, source), source);
}

OnnxGraph::OnnxGraph(Graph g, const std::string& source) : g_(std::move(g)), source_(source) {
  const auto& table = op_table();
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& n = g_.nodes[i];
    RESIN_CHECK(table.count(n.op), source_, ": unsupported ONNX op '", n.op, "' in node '", n.name, "' (node ", i + 1,
                " of ", g_.nodes.size(), "); resin imports: ", [] {
                  std::string all;
                  for (const auto& op : supported_ops()) all += (all.empty() ? "" : " ") + op;
                  return all;
                }());
  }
  auto slot = [&](const std::string& name) {
    auto [it, fresh] = slot_.emplace(name, slot_.size());
    return it->second;
  };
  // BatchNormalization's running statistics are buffers; other floating initializers train.
  std::set<std::string> stats;
  for (const Node& n : g_.nodes)
    if (n.op == "BatchNormalization")
      for (size_t k = 3; k < 5 && k < n.inputs.size(); ++k) stats.insert(n.inputs[k]);
  std::set<std::string> flat_names;
  for (auto& [name, t] : g_.initializers) {
    auto parts = split_name(name);
    bool nested = parts.size() > 1;
    for (const auto& p : parts) nested = nested && !p.empty();
    Module* holder = this;
    std::string leaf = name;
    if (nested) {
      leaf = parts.back();
      parts.pop_back();
      for (const auto& p : parts) {
        nn::ModulePtr c;
        for (const auto& [cn, cm] : holder->children())
          if (cn == p) c = cm;
        if (!c) {
          c = std::make_shared<ParamHolder>();
          holder->register_module(p, c);
        }
        holder = c.get();
      }
    } else {
      std::replace(leaf.begin(), leaf.end(), '.', '_');
      while (leaf.empty() || !flat_names.insert(leaf).second) leaf += "_";
    }
    const bool param = is_floating(t.dtype()) && !stats.count(name);
    if (param) {
      holder->register_parameter(leaf, t);
    } else {
      holder->register_buffer(leaf, t);
    }
    const size_t index = (param ? holder->own_parameters() : holder->own_buffers()).size() - 1;
    inits_.push_back({slot(name), Init{holder, param, index}});
  }
  g_.initializers.clear();  // the module's parameters and buffers are the only copy
  for (const auto& v : g_.inputs) slot(v.name);
  std::vector<int64_t> last_use;
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    std::vector<int64_t> in, out;
    for (const auto& name : g_.nodes[i].inputs) in.push_back(name.empty() ? -1 : static_cast<int64_t>(slot(name)));
    for (const auto& name : g_.nodes[i].outputs) out.push_back(name.empty() ? -1 : static_cast<int64_t>(slot(name)));
    last_use.resize(slot_.size(), -1);
    for (int64_t s : in)
      if (s >= 0) last_use[static_cast<size_t>(s)] = static_cast<int64_t>(i);
    node_in_.push_back(std::move(in));
    node_out_.push_back(std::move(out));
  }
  last_use.resize(slot_.size(), -1);
  std::set<size_t> keep;
  for (const auto& v : g_.outputs) keep.insert(slot_.at(v.name));
  for (const auto& [s, _] : inits_) keep.insert(s);
  release_after_.resize(g_.nodes.size());
  for (size_t s = 0; s < last_use.size(); ++s)
    if (last_use[s] >= 0 && !keep.count(s)) release_after_[static_cast<size_t>(last_use[s])].push_back(s);
  eval();
}

std::string OnnxGraph::extra_repr() const {
  std::string s = str_cat(g_.nodes.size(), " nodes, opset ", g_.opset);
  if (!g_.producer_name.empty()) s += ", from " + g_.producer_name + (g_.producer_version.empty() ? "" : " " + g_.producer_version);
  return s;
}

std::map<std::string, int64_t> OnnxGraph::op_counts() const {
  std::map<std::string, int64_t> m;
  for (const Node& n : g_.nodes) ++m[n.op];
  return m;
}

Tensor OnnxGraph::forward(const Tensor& x) {
  RESIN_CHECK(g_.inputs.size() == 1, source_, ": forward(x) needs a graph with one input, this one has ",
              g_.inputs.size(), "; use run()");
  RESIN_CHECK(!g_.outputs.empty(), source_, ": the graph has no outputs");
  return run({x})[0];
}

std::vector<Tensor> OnnxGraph::run(const std::vector<Tensor>& inputs) {
  RESIN_CHECK(inputs.size() == g_.inputs.size(), source_, ": expected ", g_.inputs.size(), " inputs, got ",
              inputs.size());
  std::vector<Tensor> env(slot_.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ValueInfo& v = g_.inputs[i];
    const Tensor& x = inputs[i];
    RESIN_CHECK(x.defined(), source_, ": input '", v.name, "' is undefined");
    RESIN_CHECK(x.dtype() == v.dtype, source_, ": input '", v.name, "' must be ", v.dtype, ", got ", x.dtype());
    bool fits = !v.has_shape || static_cast<int64_t>(v.dims.size()) == x.dim();
    for (size_t d = 0; fits && v.has_shape && d < v.dims.size(); ++d)
      fits = v.dims[d] < 0 || v.dims[d] == x.size(static_cast<int64_t>(d));
    RESIN_CHECK(fits, source_, ": input '", v.name, "' must have shape [", dims_str(v), "], got ", x.shape());
    env[slot_.at(v.name)] = x;
  }
  for (const auto& [s, init] : inits_)
    env[s] = (init.param ? init.holder->own_parameters() : init.holder->own_buffers())[init.index].second;
  std::vector<Tensor> args;
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    args.clear();
    for (int64_t s : node_in_[i]) args.push_back(s >= 0 ? env[static_cast<size_t>(s)] : Tensor());
    std::vector<Tensor> out = run_node(g_.nodes[i], args, g_.opset, is_training());
    for (size_t k = 0; k < node_out_[i].size(); ++k)
      if (node_out_[i][k] >= 0) env[static_cast<size_t>(node_out_[i][k])] = std::move(out[k]);
    for (size_t s : release_after_[i]) env[s] = Tensor();
  }
  std::vector<Tensor> result;
  for (const auto& v : g_.outputs) result.push_back(env[slot_.at(v.name)]);
  return result;
}

std::vector<std::string> supported_ops() {
  std::vector<std::string> ops;
  for (const auto& [name, _] : op_table()) ops.push_back(name);
  return ops;
}

}  // namespace resin::onnx
