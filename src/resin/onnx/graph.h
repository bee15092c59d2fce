// resin's in-memory form of an ONNX model (no protobuf types): nodes with parsed attributes,
// initializers as tensors, typed inputs and outputs. proto.cpp converts to and from onnx.proto,
// validating everything it reads; the interpreter (ops.h) and OnnxGraph (import.h) run it.
#pragma once
#include <string>
#include <vector>

#include "resin/nn/onnx_emit.h"

namespace resin::onnx {

struct Node {
  std::string op;    // op type (default domain)
  std::string name;  // may be empty in files; the importer names it "<op>_<index>"
  std::vector<std::string> inputs, outputs;  // "" = an omitted optional input or output
  std::vector<nn::OnnxAttr> attrs;
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::f32;
  // Dims; -1 where the file has a symbolic (dim_param) or unknown dim. `has_shape` false when the
  // file gives no shape at all.
  std::vector<int64_t> dims;
  std::vector<std::string> dim_params;  // per dim, "" where the dim is fixed
  bool has_shape = true;
};

// The dims as the file gives them, "1, 3, batch, ?": symbolic names, "?" where unknown.
inline std::string dims_str(const ValueInfo& v) {
  std::string s;
  for (size_t d = 0; d < v.dims.size(); ++d)
    s += (d ? ", " : "") + (v.dims[d] >= 0 ? std::to_string(v.dims[d]) : v.dim_params[d].empty() ? "?" : v.dim_params[d]);
  return s;
}

struct Graph {
  std::string name, doc, producer_name, producer_version;
  int64_t ir_version = 8;
  int64_t opset = 17;  // of the default domain
  std::vector<Node> nodes;
  std::vector<std::pair<std::string, Tensor>> initializers;
  std::vector<ValueInfo> inputs;   // graph inputs that are not initializers
  std::vector<ValueInfo> outputs;
};

// Opsets of the default domain that import accepts (export: 13 to kMaxOpset). Graphs of opsets 1
// to 6 are read when every op is one whose semantics have not changed since opset 1
// (kOpsetOneOps).
inline constexpr int64_t kMinOpset = 7, kMaxOpset = 17;
inline const char* const kOpsetOneOps[] = {"Conv", "GlobalAveragePool", "GlobalMaxPool", "MatMul", "Transpose",
                                           "Identity", "Softmax", "LogSoftmax", "Gather", "Shape", "Constant"};

// ---- protobuf conversion (proto.cpp)
// Parses and validates a serialized ModelProto: every tensor's type, dims and data size, every
// attribute's type, external data (rejected), the default-domain opset, name uniqueness and
// topological order, then onnx::checker. Throws resin::Error naming `source` on any defect.
Graph parse_model(const std::string& bytes, const std::string& source);
// What a model uses, read without validation (for listing files resin cannot import): the
// default-domain opset (0 if none) and each node's op type, prefixed "domain::" outside it.
struct ModelSummary {
  int64_t opset = 0;
  std::vector<std::string> ops;
};
ModelSummary peek_model(const std::string& bytes, const std::string& source);
// Serializes (tensors as raw little-endian data) and runs onnx::checker on the result.
std::string serialize_model(const Graph& g);
// A serialized TensorProto (the node tests' input_0.pb files) as a tensor.
Tensor parse_tensor(const std::string& bytes, const std::string& source);
std::string serialize_tensor(const Tensor& t, const std::string& name);

// ---- graph rewrites (passes.cpp)
// Folds each inference BatchNormalization whose input is a Conv or Gemm output read by nothing
// else into that node's weight and bias (export.h gives the formula). Returns the number folded.
int64_t fold_batch_norms(Graph& g);
// Drops nodes that no graph output depends on and initializers that no node reads.
void remove_unused(Graph& g);

}  // namespace resin::onnx
