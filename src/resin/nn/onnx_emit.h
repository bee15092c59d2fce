// Symbolic export: how a module describes itself as ONNX nodes. This header has no ONNX or
// protobuf dependency; the emitter behind the interface (src/resin/onnx/export.cpp) builds the
// protobuf graph, and the library compiles without it.
//
// Every module that ONNX can express overrides Module::export_onnx(g, x): it emits the nodes of
// its forward pass in eval mode and returns the output value. An OnnxValue carries, besides its
// name in the graph, the tensor it holds for the example input (the emitter runs each node as it is
// added), so emitters may read shapes (`x.shape()`) to choose ops. Children are emitted through
// g.module(child, x), which scopes node names by the child's path ("layer1.0.conv1/Conv_3").
#pragma once
#include <string>
#include <variant>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::nn {

class Module;

// An ONNX attribute: int, float, string, ints, floats, strings or a tensor.
using OnnxAttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>,
                                   std::vector<std::string>, Tensor>;
struct OnnxAttr {
  std::string name;
  OnnxAttrValue value;
};

// A value of the graph: its name (empty = an omitted optional input) and its example tensor.
struct OnnxValue {
  std::string name;
  Tensor sample;
  const Shape& shape() const { return sample.shape(); }
  int64_t dim() const { return sample.dim(); }
};

class OnnxEmitter {
 public:
  virtual ~OnnxEmitter() = default;
  // Adds a node of the default domain with `outputs` outputs, runs it on the inputs' examples and
  // returns its outputs. Throws resin::Error when the op rejects its inputs.
  virtual std::vector<OnnxValue> op(const std::string& type, const std::vector<OnnxValue>& inputs,
                                    const std::vector<OnnxAttr>& attrs = {}, size_t outputs = 1) = 0;
  OnnxValue op1(const std::string& type, const std::vector<OnnxValue>& inputs,
                const std::vector<OnnxAttr>& attrs = {}) {
    return op(type, inputs, attrs, 1)[0];
  }
  // A parameter or buffer of the exported model, as an initializer named by its state_dict path.
  // Throws when `t` is not one of the model's tensors.
  virtual OnnxValue param(const Tensor& t) = 0;
  // A constant (shapes, axes, scalars), emitted as a Constant node holding `t` (not an initializer).
  virtual OnnxValue constant(const Tensor& t) = 0;
  OnnxValue ints(const std::vector<int64_t>& v) { return constant(from_data(v, Shape{int64_t(v.size())})); }
  // A 0-d f32 constant.
  OnnxValue scalar(double v) { return constant(scalar_tensor(v)); }
  // Emits `m` (m.export_onnx) under its path in the model; errors name that path.
  virtual OnnxValue module(Module& m, const OnnxValue& x) = 0;
  // The opset being targeted (default domain).
  virtual int64_t opset() const = 0;
};

}  // namespace resin::nn
