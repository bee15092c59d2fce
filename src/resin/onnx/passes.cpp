// Graph rewrites applied at export: BatchNorm folding and dead-node removal.
#include <map>
#include <set>

#include "resin/nn/rewrite.h"
#include "resin/onnx/graph.h"

namespace resin::onnx {

namespace {

const nn::OnnxAttr* find_attr(const Node& n, const std::string& name) {
  for (const auto& a : n.attrs)
    if (a.name == name) return &a;
  return nullptr;
}

int64_t int_attr(const Node& n, const std::string& name, int64_t def) {
  const nn::OnnxAttr* a = find_attr(n, name);
  return a && std::holds_alternative<int64_t>(a->value) ? std::get<int64_t>(a->value) : def;
}

double float_attr(const Node& n, const std::string& name, double def) {
  const nn::OnnxAttr* a = find_attr(n, name);
  return a && std::holds_alternative<double>(a->value) ? std::get<double>(a->value) : def;
}

// A Conv, or a Gemm computing A·Bᵀ + C with unit alpha and beta: layers whose weight has one row
// per output channel (dim 0) and whose bias is per output channel.
bool foldable_producer(const Node& p) {
  if (p.op == "Conv") return true;
  return p.op == "Gemm" && int_attr(p, "transA", 0) == 0 && int_attr(p, "transB", 0) == 1 &&
         float_attr(p, "alpha", 1.0) == 1.0 && float_attr(p, "beta", 1.0) == 1.0;
}

}  // namespace

int64_t fold_batch_norms(Graph& g) {
  std::map<std::string, size_t> init;
  for (size_t i = 0; i < g.initializers.size(); ++i) init[g.initializers[i].first] = i;
  std::map<std::string, int> uses;
  for (const Node& n : g.nodes)
    for (const auto& in : n.inputs) ++uses[in];
  for (const auto& o : g.outputs) ++uses[o.name];
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs) producer[o] = i;
  std::set<std::string> names;
  for (const auto& [n, _] : g.initializers) names.insert(n);

  std::vector<bool> removed(g.nodes.size(), false);
  int64_t folded = 0;
  for (size_t bi = 0; bi < g.nodes.size(); ++bi) {
    Node& bn = g.nodes[bi];
    if (bn.op != "BatchNormalization" || bn.inputs.size() != 5 || bn.outputs.size() != 1 ||
        int_attr(bn, "training_mode", 0) != 0)
      continue;
    bool stats_const = true;
    for (size_t k = 1; k < 5; ++k) stats_const = stats_const && init.count(bn.inputs[k]);
    auto pit = producer.find(bn.inputs[0]);
    if (!stats_const || pit == producer.end() || uses[bn.inputs[0]] != 1) continue;
    Node& p = g.nodes[pit->second];
    if (!foldable_producer(p) || p.outputs.size() != 1 || p.inputs.size() < 2 || !init.count(p.inputs[1]) ||
        uses[p.inputs[1]] != 1)
      continue;
    const bool has_bias = p.inputs.size() > 2 && !p.inputs[2].empty();
    if (has_bias && (!init.count(p.inputs[2]) || uses[p.inputs[2]] != 1)) continue;
    Tensor& w = g.initializers[init[p.inputs[1]]].second;
    auto value = [&](size_t k) { return g.initializers[init[bn.inputs[k]]].second.to_vector(); };
    const auto gamma = value(1), beta = value(2), mean = value(3), var = value(4);
    const int64_t c = w.dim() >= 1 ? w.size(0) : 0;
    if (w.dtype() != DType::f32 || c == 0 || static_cast<int64_t>(gamma.size()) != c || beta.size() != gamma.size() ||
        mean.size() != gamma.size() || var.size() != gamma.size())
      continue;
    const double eps = float_attr(bn, "epsilon", 1e-5);
    std::vector<double> wv = w.contiguous().to_vector();
    std::vector<double> bv = has_bias ? g.initializers[init[p.inputs[2]]].second.to_vector()
                                      : std::vector<double>(static_cast<size_t>(c), 0.0);
    if (static_cast<int64_t>(bv.size()) != c) continue;
    nn::fold_batch_norm(wv, bv, gamma, beta, mean, var, eps);
    w = from_vector(wv, w.shape());
    Tensor b = from_vector(bv, {c});
    if (has_bias) {
      g.initializers[init[p.inputs[2]]].second = b;
    } else {
      // "<layer>.weight" → "<layer>.bias"
      const std::string& wn = p.inputs[1];
      std::string bn_name = wn.size() > 7 && wn.compare(wn.size() - 7, 7, ".weight") == 0
                                ? wn.substr(0, wn.size() - 7) + ".bias"
                                : wn + "_bias";
      while (!names.insert(bn_name).second) bn_name += "_";
      init[bn_name] = g.initializers.size();
      g.initializers.emplace_back(bn_name, b);
      p.inputs.resize(3);
      p.inputs[2] = bn_name;
      uses[bn_name] = 1;
    }
    p.outputs[0] = bn.outputs[0];
    producer[bn.outputs[0]] = pit->second;
    removed[bi] = true;
    ++folded;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  remove_unused(g);
  return folded;
}

void remove_unused(Graph& g) {
  std::set<std::string> needed;
  for (const auto& o : g.outputs) needed.insert(o.name);
  std::vector<bool> keep(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    for (const auto& o : n.outputs) keep[i] = keep[i] || needed.count(o);
    if (keep[i])
      for (const auto& in : n.inputs) needed.insert(in);
  }
  std::vector<Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) nodes.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(nodes);
  std::vector<std::pair<std::string, Tensor>> inits;
  for (auto& [name, t] : g.initializers)
    if (needed.count(name)) inits.emplace_back(name, t);
  g.initializers = std::move(inits);
}

}  // namespace resin::onnx
