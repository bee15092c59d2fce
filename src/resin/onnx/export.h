// ONNX export: a resin module as an .onnx file that ONNX Runtime, TensorRT or OpenVINO can run.
//
//   auto model = models::create_model("resnet50", {.num_classes = 1000});
//   onnx::export_model(*model, "resnet50.onnx", {.input_shape = {1, 3, 224, 224}, .dynamic_batch = true});
//
// The module tree is walked through Module::export_onnx (nn/onnx_emit.h) in eval mode (the
// model's train/eval flags are restored afterwards), emitting default-domain ops of the chosen
// opset (13–17; LayerNormalization is a single op from 17, decomposed before). Each node is run
// as it is added, on an example input drawn from N(0, 1), so that emitters see shapes.
//
// The graph: one input (`input_name`, f32, `input_shape`, dim 0 named "batch" when
// dynamic_batch) and one output (`output_name`). Parameters and buffers are initializers named by
// their state_dict paths ("layer1.0.conv1.weight"); constants (shapes, axes, scalars) are
// Constant nodes. With fold_batch_norm, every BatchNormalization that directly follows a Conv or
// a Gemm (Linear on [N, D]) whose output nothing else reads is folded into that layer's weight
// and bias (W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β); other BNs (pre-activation, DenseNet)
// stay BatchNormalization nodes. Unused nodes are dropped, onnx::checker must pass.
//
// With verify (default), the serialized model is imported again (import.h) and run on the
// example input — and, with dynamic_batch, on a batch of another size — and compared with the
// module's own forward; a difference above 1e-4 of the output's largest magnitude throws. Errors:
// modules with no ONNX form name their type and path ("cannot export RevNet ... (module
// 'blocks.3')"); non-f32 parameters; opsets outside 13–17.
#pragma once
#include <map>
#include <string>

#include "resin/nn/module.h"
#include "resin/onnx/graph.h"

namespace resin::onnx {

struct ExportOptions {
  Shape input_shape;  // the example input, e.g. {1, 3, 224, 224}; required
  int64_t opset = 17;
  bool dynamic_batch = false;
  bool fold_batch_norm = true;
  bool verify = true;
  std::string input_name = "input", output_name = "output";
  uint64_t seed = 0;  // of the example input
};

struct ExportReport {
  int64_t nodes = 0, initializers = 0, parameters = 0;  // parameters: elements in initializers
  int64_t folded_batch_norms = 0;
  std::map<std::string, int64_t> op_counts;
  size_t bytes = 0;
  Shape output_shape;          // for the example input
  double verify_error = -1;    // max |resin - reimported| / max |resin| over the checks; -1 when not verified
};

// The graph (not serialized).
Graph export_graph(nn::Module& model, const ExportOptions& o, ExportReport* report = nullptr);
// The serialized ModelProto.
std::string export_bytes(nn::Module& model, const ExportOptions& o, ExportReport* report = nullptr);
// Writes `path` atomically.
ExportReport export_model(nn::Module& model, const std::string& path, const ExportOptions& o);

}  // namespace resin::onnx
