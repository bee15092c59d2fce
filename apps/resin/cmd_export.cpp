// resin export: a zoo model (random, from a weights file or from a training run) as an .onnx file.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/io/json.h"
#include "resin/models/lab_models.h"
#include "resin/train/checkpoint.h"
#ifdef RESIN_WITH_ONNX
#include "resin/onnx/export.h"
#endif

namespace resin::app {

namespace {

// A run directory's checkpoint (best.ckpt, else last.ckpt) or the file itself.
std::string checkpoint_file(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return path;
  for (const char* name : {"best.ckpt", "last.ckpt"})
    if (fs::exists(fs::path(path) / name)) return (fs::path(path) / name).string();
  RESIN_FAIL("resin export: ", path, " holds neither best.ckpt nor last.ckpt");
}

// The image size a run trained at, from its recorded configuration ("data": "fashion-mnist", ...).
int64_t run_image_size(const std::string& config_json) {
  if (config_json.empty()) return 0;
  const io::JsonValue v = io::parse_json(config_json, "checkpoint config");
  const io::JsonValue* data = v.find("data");
  if (!data || data->kind != io::JsonValue::Kind::string) return 0;
  if (data->string.find("mnist") != std::string::npos) return 28;
  if (data->string.find("cifar") != std::string::npos) return 32;
  return 0;
}

}  // namespace

int cmd_export(const std::vector<std::string>& argv) {
  cli::Args args("resin export",
                 "Writes a model as an ONNX file (for ONNX Runtime, TensorRT, OpenVINO, ...). The graph has one\n"
                 "input [batch, C, H, W] (float32) and one output; parameters are initializers named by their\n"
                 "state_dict paths. Eval-mode semantics; BatchNorm is folded into the preceding convolution unless\n"
                 "--keep-bn. The file is checked with onnx::checker and re-run through resin's importer against\n"
                 "the model before it is written. See docs/onnx.md.");
  args.option("model", "", "network from `resin zoo`, or a lab spec such as resmlp:width=64 (default: the checkpoint's)",
              "NAME")
      .option("weights", "", "weights (.safetensors with torchvision names, e.g. a run's weights.safetensors)", "FILE")
      .option("checkpoint", "", "a training run's directory (its best.ckpt, else last.ckpt) or a .ckpt file", "DIR")
      .required("out", "the .onnx file to write", "FILE")
      .option("opset", "17", "ONNX opset, 13 to 17 (LayerNormalization is one op from 17)", "N")
      .flag("dynamic-batch", "make the batch dimension symbolic (\"batch\")")
      .option("batch", "1", "batch size of the example input (fixed in the graph without --dynamic-batch)", "N")
      .option("in-channels", "0", "input channels (default: the checkpoint's, or the zoo's paper setting)", "C")
      .option("num-classes", "0", "classes (default: the checkpoint's, or the zoo's paper setting)", "K")
      .option("image-size", "0", "input height and width (default: the run's dataset, or the zoo's setting)", "S")
      .flag("keep-bn", "keep BatchNormalization nodes instead of folding them into convolutions")
      .option("input-name", "input", "name of the graph input", "NAME")
      .option("output-name", "output", "name of the graph output", "NAME")
      .flag("no-verify", "skip re-running the exported graph against the model");
  if (!args.parse(argv)) return 0;
  RESIN_CHECK(!(args.has("weights") && args.has("checkpoint")), "resin export: give --weights or --checkpoint, not both");
  std::string name = args.get("model");
  models::ModelArgs ma{.in_channels = 0, .num_classes = 0, .image_size = 0};
  std::map<std::string, Tensor> weights;
  if (args.has("checkpoint")) {
    const std::string file = checkpoint_file(args.get("checkpoint"));
    train::Checkpoint ck = train::load_checkpoint(file);
    RESIN_CHECK(name.empty() || name == ck.info.model_name, "resin export: --model ", name,
                " does not match the checkpoint's model ", ck.info.model_name);
    name = ck.info.model_name;
    ma = {.in_channels = ck.info.in_channels, .num_classes = ck.info.num_classes,
          .image_size = run_image_size(ck.info.config_json)};
    weights = std::move(ck.model);
  } else {
    RESIN_CHECK(!name.empty(), "resin export: say which network with --model NAME (or give --checkpoint DIR)");
    if (!models::is_lab_spec(name)) ma = models::zoo_entry(name).paper_args;
    if (args.has("weights")) weights = train::load_weights(args.get("weights"));
  }
  auto pick = [&](const char* flag, int64_t from_source, int64_t fallback) {
    const int64_t v = args.get_int(flag, 0, 1 << 20);
    return v > 0 ? v : from_source > 0 ? from_source : fallback;
  };
  ma.in_channels = pick("in-channels", ma.in_channels, 1);
  ma.num_classes = pick("num-classes", ma.num_classes, 10);
  ma.image_size = pick("image-size", ma.image_size, 28);
  auto model = models::create_model(name, ma);
  if (!weights.empty()) model->load_state_dict(weights, true);
#ifdef RESIN_WITH_ONNX
  const int64_t batch = args.get_int("batch", 1, 1 << 16);
  onnx::ExportOptions o{.input_shape = {batch, ma.in_channels, ma.image_size, ma.image_size},
                        .opset = args.get_int("opset", 1, 1000),
                        .dynamic_batch = args.get_flag("dynamic-batch"),
                        .fold_batch_norm = !args.get_flag("keep-bn"),
                        .verify = !args.get_flag("no-verify"),
                        .input_name = args.get("input-name"),
                        .output_name = args.get("output-name")};
  const onnx::ExportReport r = onnx::export_model(*model, args.get("out"), o);
  std::string ops;
  for (const auto& [op, n] : r.op_counts) ops += str_cat(ops.empty() ? "" : ", ", op, " ", n);
  std::printf("wrote %s: %s, opset %lld, %lld nodes (%s), %lld parameters in %lld initializers, %.1f MB\n",
              args.get("out").c_str(), name.c_str(), static_cast<long long>(o.opset), static_cast<long long>(r.nodes),
              ops.c_str(), static_cast<long long>(r.parameters), static_cast<long long>(r.initializers),
              static_cast<double>(r.bytes) / 1e6);
  std::printf("input %s %s, output %s %s%s; %lld BatchNorm folded\n", o.input_name.c_str(),
              o.input_shape.str().c_str(), o.output_name.c_str(), r.output_shape.str().c_str(),
              o.dynamic_batch ? " (batch symbolic)" : "", static_cast<long long>(r.folded_batch_norms));
  if (r.verify_error >= 0)
    std::printf("verified: the re-imported graph matches the model to %.2g of the output's magnitude\n", r.verify_error);
  return 0;
#else
  RESIN_FAIL("resin export: this resin was built without ONNX support (install libonnx-dev and libprotobuf-dev, "
             "e.g. with scripts/install-deps.sh, and reconfigure)");
#endif
}

}  // namespace resin::app
