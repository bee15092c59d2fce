#include <cstdio>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/train/bench.h"

namespace resin::app {

int cmd_bench(const std::vector<std::string>& argv) {
  train::BenchConfig d;  // defaults
  cli::Args args("resin bench",
                 "Times training steps (forward, loss, backward, SGD step) or inference forwards of a model on\n"
                 "synthetic data: median and spread over --reps iterations after --warmup, images/s and GFLOP/s\n"
                 "(2 x MACs; a training step counts 3 forward passes). --json prints one JSON object instead.");
  args.option("model", d.model, "network from `resin zoo`, or a lab spec (rowformer:dim=128,...)", "NAME")
      .option("mode", d.mode, "train | infer", "MODE")
      .option(
          "dtype", d.dtype,
          "f32 | bf16 | f16 (autocast: convolutions and matmuls in bf16/f16, the rest f32; f16 on CUDA only)",
          "TYPE")
      .option("device", d.device,
              "cpu | cuda | cuda:N (a build with RESIN_WITH_CUDA); cpu:1 checks device placement on the CPU",
              "DEV")
      .option("batch-size", std::to_string(d.batch_size), "images per iteration", "B")
      .option("image-size", std::to_string(d.image_size), "square input size", "S")
      .option("channels", std::to_string(d.channels), "input channels", "C")
      .option("classes", std::to_string(d.classes), "output classes", "K")
      .option("threads", "0", "compute threads (0: all cores)", "T")
      .option("warmup", std::to_string(d.warmup), "untimed iterations first", "N")
      .option("reps", std::to_string(d.reps), "timed iterations", "N")
      .option("seed", "0", "seed for weights and data", "S")
      .flag("channels-last", "NHWC input (activations follow the input's layout)")
      .flag("no-fuse", "inference: run the module op by op instead of its fused plan")
      .flag("print-plan", "inference: print the fused plan's steps and kernels")
      .flag("json", "print one JSON object");
  if (!args.parse(argv)) return 0;
  train::BenchConfig c;
  c.model = args.get("model");
  c.mode = args.get("mode");
  c.dtype = args.get("dtype");
  c.device = args.get("device");
  c.batch_size = args.get_int("batch-size", 1, 1 << 20);
  c.image_size = args.get_int("image-size", 1, 1 << 16);
  c.channels = args.get_int("channels", 1, 1 << 16);
  c.classes = args.get_int("classes", 1, 1 << 24);
  c.threads = args.get_int("threads", 0, 1024);
  c.warmup = args.get_int("warmup", 0, 1 << 20);
  c.reps = args.get_int("reps", 1, 1 << 20);
  c.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  c.channels_last = args.get_flag("channels-last");
  c.fuse = !args.get_flag("no-fuse");
  c.print_plan = args.get_flag("print-plan");
  const train::BenchResult r = train::run_bench(c);
  if (args.get_flag("json")) std::printf("%s\n", train::to_json(r).c_str());
  else std::printf("%s", train::to_text(r).c_str());
  return 0;
}

}  // namespace resin::app
