// resin import: reads an .onnx file into resin, describes it, optionally runs it and saves its
// weights.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "resin/autograd/grad_mode.h"
#include "resin/cli/args.h"
#include "resin/train/checkpoint.h"
#ifdef RESIN_WITH_ONNX
#include "resin/onnx/import.h"
#endif

namespace resin::app {

#ifdef RESIN_WITH_ONNX
namespace {

std::string describe(const onnx::ValueInfo& v) {
  return str_cat(v.name, " ", dtype_name(v.dtype), v.has_shape ? " [" + onnx::dims_str(v) + "]" : " (no shape)");
}

}  // namespace
#endif

int cmd_import(const std::vector<std::string>& argv) {
  cli::Args args("resin import FILE.onnx",
                 "Imports an ONNX model into resin: checks the file (onnx::checker, every tensor, every op), lists\n"
                 "its inputs, outputs, ops and parameters, and optionally runs it on a random input and saves its\n"
                 "initializers as safetensors (names kept, so `resin`'s C++ API can fine-tune it: OnnxGraph in\n"
                 "resin/onnx/import.h). Unsupported ops are named with their node. See docs/onnx.md.");
  args.flag("run", "run the graph once on N(0, 1) inputs of the declared shapes")
      .option("batch", "1", "size of symbolic dims (the batch) for --run", "N")
      .option("out", "", "write the initializers to this .safetensors file", "FILE");
  std::vector<std::string> rest = argv;
  std::string file;
  if (!rest.empty() && rest[0].rfind("-", 0) != 0) {
    file = rest[0];
    rest.erase(rest.begin());
  }
  if (!args.parse(rest)) return 0;
  RESIN_CHECK(!file.empty(), "give the model file first: resin import FILE.onnx [options]");
#ifdef RESIN_WITH_ONNX
  auto g = onnx::OnnxGraph::load(file);
  std::string ops;
  for (const auto& [op, n] : g->op_counts()) ops += str_cat(ops.empty() ? "" : ", ", op, " ", n);
  std::printf("%s: %zu nodes, opset %lld%s\n", file.c_str(), g->nodes().size(), static_cast<long long>(g->opset()),
              g->producer().empty() ? "" : (", from " + g->producer()).c_str());
  for (const auto& v : g->inputs()) std::printf("input   %s\n", describe(v).c_str());
  for (const auto& v : g->outputs()) std::printf("output  %s\n", describe(v).c_str());
  std::printf("ops     %s\n", ops.c_str());
  int64_t buffers = 0;
  for (const auto& [_, t] : g->named_buffers()) buffers += t.numel();
  std::printf("params  %lld trainable in %zu tensors, %lld in %zu buffers\n",
              static_cast<long long>(g->parameter_count()), g->named_parameters().size(),
              static_cast<long long>(buffers), g->named_buffers().size());
  if (args.get_flag("run")) {
    const int64_t batch = args.get_int("batch", 1, 1 << 16);
    std::vector<Tensor> inputs;
    for (const auto& v : g->inputs()) {
      RESIN_CHECK(v.has_shape, "resin import --run: input '", v.name, "' has no declared shape");
      std::vector<int64_t> dims = v.dims;
      // The file's dims decide the allocation: bounded like any tensor sized by a file.
      int64_t n = 1;
      bool too_big = false;
      for (auto& d : dims) {
        d = d < 0 ? batch : d;
        too_big = too_big || __builtin_mul_overflow(n, d, &n) || n > onnx::element_limit();
      }
      RESIN_CHECK(!too_big, "resin import --run: input '", v.name, "' of shape ", Shape(dims),
                  " exceeds the limit of ", onnx::element_limit(), " elements per tensor");
      inputs.push_back(is_floating(v.dtype) ? randn(Shape(dims), {.dtype = v.dtype}) : zeros(Shape(dims), {.dtype = v.dtype}));
    }
    NoGradGuard ng;
    const auto t0 = std::chrono::steady_clock::now();
    const auto outs = g->run(inputs);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t i = 0; i < outs.size(); ++i)
      std::printf("ran     %s -> %s in %.3f s\n", g->outputs()[i].name.c_str(), outs[i].shape().str().c_str(), s);
  }
  if (args.has("out")) {
    train::save_weights(args.get("out"), *g);
    std::printf("wrote   %s (%zu tensors)\n", args.get("out").c_str(), g->state_dict().size());
  }
  return 0;
#else
  RESIN_FAIL("resin import: this resin was built without ONNX support (install libonnx-dev and libprotobuf-dev, "
             "e.g. with scripts/install-deps.sh, and reconfigure)");
#endif
}

}  // namespace resin::app
