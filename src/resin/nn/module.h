// Module: parameters, buffers and child modules registered BY NAME, so named_parameters() yields
// torchvision paths ("layer1.0.conv1.weight", "layer1.0.downsample.1.running_mean") and weights
// move to and from PyTorch without a mapping table.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resin/nn/onnx_emit.h"
#include "resin/ops/ops.h"

namespace resin::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;

struct LoadReport {
  std::vector<std::string> missing;      // in the module, absent from the state
  std::vector<std::string> unexpected;   // in the state, absent from the module
  std::vector<std::string> mismatched;   // present in both with different shapes ("name: [a] vs [b]")
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const;
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  virtual ~Module() = default;
  // The module's type for printing, e.g. "Conv2d".
  virtual std::string type_name() const = 0;
  // Single-input forward. Modules with other signatures add their own overloads.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // Extra text in the printed tree, e.g. "64, 64, kernel=3, stride=1".
  virtual std::string extra_repr() const { return ""; }
  // Emits this module's eval-mode forward as ONNX nodes (nn/onnx_emit.h). The default throws
  // "cannot export <type>"; layers, blocks and models that ONNX can express override it.
  virtual OnnxValue export_onnx(OnnxEmitter& g, const OnnxValue& x);

  // ---- registration (by name, in order)
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- traversal (recursive, registration order, dotted paths)
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, ModulePtr>> named_modules() const;  // excludes this
  std::vector<Tensor> parameters() const;
  const std::vector<std::pair<std::string, ModulePtr>>& children() const { return children_; }
  ModulePtr child(const std::string& name) const;
  int64_t parameter_count() const;

  // Parameters and buffers of this module alone.
  std::vector<std::pair<std::string, Tensor>>& own_parameters() { return params_; }
  std::vector<std::pair<std::string, Tensor>>& own_buffers() { return buffers_; }

  // ---- mode
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();
  // Converts every floating parameter and buffer to `dtype` (e.g. f64 for gradient checks).
  void to(DType dtype);
  // Moves every floating parameter and buffer to `device` (layout kept; gradients dropped). Integer
  // buffers (BatchNorm's num_batches_tracked) stay on the CPU: they are host-side counters. Move a
  // model before building its optimizer, which holds the parameter handles.
  void to(Device device);
  // Where the module computes: the device of its first parameter (else of its first floating buffer),
  // the CPU for a module with neither (placement() says "neither" as nullopt). After to(device)
  // every one of them is there.
  std::optional<Device> placement() const;
  Device device() const { return placement().value_or(Device::cpu()); }

  // ---- state: parameters then buffers, each under its dotted path
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into existing tensors (shapes must match). strict: any missing/unexpected key
  // throws listing all of them; mismatched shapes always throw.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);

  // Printed tree like PyTorch's repr.
  std::string str(int indent = 0) const;

 protected:
  void add_child(const std::string& name, ModulePtr m);

 private:
  void collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const;
  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
  bool training_ = true;
};

}  // namespace resin::nn
