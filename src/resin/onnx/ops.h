// The ONNX op interpreter: each supported op type runs with resin ops, so an imported graph is
// differentiable wherever its ops are (fine-tuning), and an exported graph can be re-run node by
// node as it is built. Semantics follow the ONNX operator docs for the opsets import accepts
// (7–17, and 1–6 for the ops of kOpsetOneOps; graph.h); where an op's form changed with the opset
// (Softmax, Split, Squeeze, Pad, Slice, Clip, Dropout, ...) the graph's opset decides.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "resin/onnx/graph.h"
#include "resin/ops/ops.h"

namespace resin::onnx {

// What an op sees of its node: typed attribute access (wrong types and missing required
// attributes throw naming the attribute) and the run's settings.
class OpContext {
 public:
  OpContext(const Node& node, int64_t opset, bool training) : node_(node), opset_(opset), training_(training) {}
  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  bool training() const { return training_; }
  size_t num_outputs() const { return node_.outputs.size(); }
  // Whether output i is requested (present and named).
  bool wants_output(size_t i) const { return i < node_.outputs.size() && !node_.outputs[i].empty(); }

  bool has(const std::string& name) const { return find(name) != nullptr; }
  int64_t i(const std::string& name, int64_t def) const;
  int64_t i(const std::string& name) const;  // required
  double f(const std::string& name, double def) const;
  std::string s(const std::string& name, const std::string& def) const;
  std::vector<int64_t> ints(const std::string& name, const std::vector<int64_t>& def) const;
  std::vector<int64_t> ints(const std::string& name) const;  // required
  std::vector<double> floats(const std::string& name, const std::vector<double>& def) const;
  Tensor tensor(const std::string& name) const;  // required
  // Throws resin::Error(message); run_node prefixes the node name and op.
  [[noreturn]] void fail(const std::string& message) const;

 private:
  const nn::OnnxAttr* find(const std::string& name) const;
  template <class T>
  const T& get(const std::string& name, const char* type) const;
  const Node& node_;
  int64_t opset_;
  bool training_;
};

// inputs: one per node input, undefined where the input is omitted (""). Returns one tensor per
// node output (undefined where an optional output is not produced).
using OpFn = std::function<std::vector<Tensor>(const OpContext&, const std::vector<Tensor>&)>;
using OpTable = std::map<std::string, OpFn>;

const OpTable& op_table();
// Runs one node. Errors are prefixed with the node's name and op.
std::vector<Tensor> run_node(const Node& node, const std::vector<Tensor>& inputs, int64_t opset, bool training);

// Registration of each group (ops_math.cpp, ops_nn.cpp, ops_shape.cpp).
void add_math_ops(OpTable& t);
void add_nn_ops(OpTable& t);
void add_shape_ops(OpTable& t);

// ---- helpers shared by the op groups
// Tensors whose size a file's attributes or shape inputs decide (Pad, Expand, ConstantOfShape,
// Gather, broadcasting — elementwise ops, LayerNormalization's scale and bias, Gemm's C —, MatMul,
// convolution and pooling outputs) may hold at most element_limit() elements (import.h), and
// spatial attributes (kernels, strides, dilations, pads) at most 2^16; shape values (Reshape,
// Split, Slice) are checked so that their arithmetic cannot overflow, and the tensors stored in
// the file (initializers, Constant values) must hold all their values, so they are bounded by the
// file's size. A hostile file fails with an error instead of exhausting memory or overflowing size
// arithmetic.
inline constexpr int64_t kMaxSpatial = int64_t{1} << 16;
void check_size(const OpContext& c, const Shape& s, const char* what);
// The integer values of a 0-d or 1-D i64/i32 tensor (shapes, axes, pads). Throws if undefined.
std::vector<int64_t> int_values(const Tensor& t, const char* what);
// A tensor operand that must be defined: "<Op>: input <i> (<what>) is missing".
const Tensor& need(const OpContext& c, const std::vector<Tensor>& in, size_t i, const char* what);
// Wraps an axis in [-rank, rank) to [0, rank), naming the op.
int64_t axis(const OpContext& c, int64_t a, int64_t rank);
// x[..., idx, ...] along dim `a` for i64 indices already in [0, x.size(a)): an index_select
// that keeps gradients for floating x. The result has x's dims with dim a replaced by idx's.
Tensor take(const Tensor& x, int64_t a, const Tensor& idx);

}  // namespace resin::onnx
