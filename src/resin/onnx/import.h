// ONNX import: an .onnx file as a resin module.
//
//   auto net = resin::onnx::OnnxGraph::load("resnet18.onnx");   // eval mode
//   Tensor logits = net->forward(x);                            // x [N, 3, H, W]
//   net->train();  // fine-tuning: BatchNormalization uses batch statistics, Dropout drops
//   for (auto& [name, p] : net->named_parameters()) ...         // the initializers, by name
//
// The graph runs node by node in file order (ONNX requires topological order) with resin ops,
// so gradients flow through every op that has one in resin (all of ops.h's interpreter except
// Shape, Cast to integers and integer arithmetic). Initializers become parameters (floating
// tensors) or buffers (integer tensors, and BatchNormalization's running mean and variance),
// registered under their initializer names: a dotted name "layer1.0.conv1.weight" is the
// state_dict key, so weights load with load_state_dict and save as safetensors unchanged. Names
// with empty components get '.' replaced by '_'. Constant nodes stay constants.
//
// Errors (resin::Error, never a crash): unreadable, truncated or corrupt files; external data;
// unsupported element types, attributes of graph type, non-default op domains, opsets outside
// 7..17 (kMinOpset..kMaxOpset; opsets 1..6 only when every op is one of kOpsetOneOps, graph.h);
// an unsupported op names the op and its node; at run time, a node's failure names the node, e.g.
// "node 'conv1' (Conv): conv2d: ...".
#pragma once
#include <map>
#include <memory>

#include "resin/nn/module.h"
#include "resin/onnx/graph.h"

namespace resin::onnx {

class OnnxGraph : public nn::Module {
 public:
  static std::shared_ptr<OnnxGraph> load(const std::string& path);
  static std::shared_ptr<OnnxGraph> from_bytes(const std::string& bytes, const std::string& source = "<memory>");
  // Takes a parsed graph (its initializers move into the module); `source` names it in errors.
  OnnxGraph(Graph g, const std::string& source);

  std::string type_name() const override { return "OnnxGraph"; }
  std::string extra_repr() const override;
  // One-input graphs: runs the graph on x and returns its first output.
  Tensor forward(const Tensor& x) override;
  // All graph inputs in order (initializers excluded) → all graph outputs in order. Inputs are
  // checked against the declared element types and fixed dims.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  const std::vector<ValueInfo>& inputs() const { return g_.inputs; }
  const std::vector<ValueInfo>& outputs() const { return g_.outputs; }
  const std::vector<Node>& nodes() const { return g_.nodes; }
  int64_t opset() const { return g_.opset; }
  const std::string& producer() const { return g_.producer_name; }
  // Node count per op type.
  std::map<std::string, int64_t> op_counts() const;

 private:
  struct Init {
    Module* holder;
    bool param;
    size_t index;
  };
  Graph g_;
  std::string source_;
  std::map<std::string, size_t> slot_;   // value name → slot
  std::vector<std::pair<size_t, Init>> inits_;
  std::vector<std::vector<int64_t>> node_in_, node_out_;  // slots; -1 = omitted
  std::vector<std::vector<size_t>> release_after_;        // slots freed after node i
};

// The op types the interpreter runs, sorted.
std::vector<std::string> supported_ops();

// The most elements a tensor may have when its size comes from a file's values (pads, shapes,
// broadcasting, indices, convolution geometry): 2^28 (1 GiB of f32) by default, process-wide.
// Lower it to import untrusted files in a constrained process; ops that would exceed it throw.
inline constexpr int64_t kDefaultElementLimit = int64_t{1} << 28;
int64_t element_limit();
void set_element_limit(int64_t n);

}  // namespace resin::onnx
