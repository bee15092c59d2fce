#include <cmath>
#include <cstdio>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/core/error.h"
#include "resin/train/trainer.h"

namespace resin::app {

int cmd_train(const std::vector<std::string>& argv) {
  train::TrainConfig d;  // defaults
  cli::Args args("resin train",
                 "Trains a zoo model with SGD (Nesterov momentum, weight decay off for BN and biases), a linear\n"
                 "warm-up and a cosine schedule, evaluating on the test split after every epoch. Writes\n"
                 "config.json, metrics.jsonl, last.ckpt, best.ckpt and weights.safetensors into --out.\n"
                 "Data parallel: `resin launch -n N -- resin train ...` (or mpirun/srun with MASTER_ADDR set) runs N\n"
                 "processes that split each --batch-size batch and average gradients; see docs/distributed.md.");
  args.option("model", d.model, "network from `resin zoo`", "NAME")
      .option("data", d.data, "fashion-mnist | mnist | cifar10 | cifar100", "NAME")
      .option("data-dir", "",
              "dataset directory (default: /usr/share/datasets/fashion-mnist for fashion-mnist)", "DIR")
      .option("out", d.out, "output directory", "DIR")
      .option("epochs", std::to_string(d.epochs), "number of epochs", "N")
      .option("batch-size", std::to_string(d.batch_size), "images per step", "B")
      .option("lr", "0.1", "peak learning rate", "LR")
      .option("momentum", "0.9", "SGD momentum", "M")
      .option("weight-decay", "5e-4", "L2 weight decay (not applied to BN parameters and biases)", "WD")
      .flag("no-nesterov", "plain momentum instead of Nesterov")
      .option("schedule", d.schedule, "cosine | multistep | constant", "NAME")
      .option("milestones", "", "epochs where multistep divides the lr by 10 (default: 50%,75%)", "E1,E2")
      .option("warmup-epochs", "0.2", "linear warm-up from lr/10 over this many epochs", "E")
      .option("label-smoothing", "0", "cross-entropy label smoothing", "EPS")
      .flag("no-augment", "no random crops / flips")
      .option("seed", "0", "seed for initialisation, shuffling and augmentation", "S")
      .option("threads", "0", "compute threads (0: all cores)", "T")
      .option("workers", "1", "data loader threads", "W")
      .flag("resume", "continue the run in --out from last.ckpt")
      .option("train-subset", "0", "use only the first N training images (0: all)", "N")
      .option("test-subset", "0", "evaluate on only the first N test images (0: all)", "N")
      .option("checkpoint-every", "0", "also checkpoint every N steps (0: after each epoch only)", "N")
      .option("max-steps", "0", "stop after N steps in total (0: no limit)", "N")
      .flag("skip-nonfinite", "skip steps whose loss or gradients are NaN/Inf instead of stopping")
      .option("clip-grad-norm", "0", "clip the global gradient norm (0: off)", "X")
      .flag("channels-last", "keep activations in NHWC layout")
      .option("dtype", d.dtype,
              "f32 | bf16 | f16 (autocast: convolutions and matmuls in bf16 on CPUs with "
              "AVX512_BF16 or on CUDA, f16 on CUDA; weights, optimizer and checkpoints stay f32)",
              "TYPE")
      .option("loss-scale", d.loss_scale, "auto (dynamic for f16) | dynamic | none | S (a static scale)",
              "MODE")
      .option("device", d.device,
              "cpu | cuda | cuda:N (a build with RESIN_WITH_CUDA); cpu:1 checks device placement on the CPU",
              "DEV")
      .option("log-every", "50", "steps between train records in metrics.jsonl", "N")
      .option("progress", "auto", "auto | bar | lines", "MODE")
      .flag("sync-bn", "data parallel: BatchNorm statistics over all processes (default: per process)")
      .option("bucket-mb", "25", "data parallel: gradient all-reduce bucket size", "MIB")
      .option("dist-timeout", "60",
              "data parallel: seconds before a silent process counts as dead "
              "(default: RESIN_DIST_TIMEOUT or 60)",
              "S")
      .option("dist-backend", "auto",
              "data parallel: auto (nccl for --device cuda with a GPU per process, in a build with "
              "RESIN_WITH_NCCL; else gloo) | gloo | nccl",
              "NAME");
  if (!args.parse(argv)) return 0;
  train::TrainConfig c;
  c.model = args.get("model");
  c.data = args.get("data");
  c.data_dir = args.get("data-dir");
  c.out = args.get("out");
  c.epochs = args.get_int("epochs", 1, 100000);
  c.batch_size = args.get_int("batch-size", 1, 1 << 20);
  c.lr = args.get_double("lr", 1e-12, 1e3);
  c.momentum = args.get_double("momentum", 0, 1);
  c.weight_decay = args.get_double("weight-decay", 0, 1);
  c.nesterov = !args.get_flag("no-nesterov");
  c.schedule = args.get("schedule");
  c.milestones = args.get_int_list("milestones");
  c.warmup_epochs = args.get_double("warmup-epochs", 0, 1e6);
  c.label_smoothing = args.get_double("label-smoothing", 0, 1);
  c.augment = !args.get_flag("no-augment");
  c.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  c.threads = args.get_int("threads", 0, 1024);
  c.workers = args.get_int("workers", 0, 64);
  c.resume = args.get_flag("resume");
  c.train_subset = args.get_int("train-subset", 0);
  c.test_subset = args.get_int("test-subset", 0);
  c.checkpoint_every = args.get_int("checkpoint-every", 0);
  c.max_steps = args.get_int("max-steps", 0);
  c.skip_nonfinite = args.get_flag("skip-nonfinite");
  c.clip_grad_norm = args.get_double("clip-grad-norm", 0);
  c.channels_last = args.get_flag("channels-last");
  c.dtype = args.get("dtype");
  c.loss_scale = args.get("loss-scale");
  c.device = args.get("device");
  c.log_every = args.get_int("log-every", 1);
  const std::string progress = args.get("progress");
  RESIN_CHECK(progress == "auto" || progress == "bar" || progress == "lines", "--progress expects auto, bar or lines, got '",
              progress, "'");
  c.progress = progress == "auto" ? -1 : (progress == "bar" ? 1 : 0);
  c.dist = distributed::dist_config_from_env();
  if (args.has("dist-timeout"))
    c.dist.timeout = std::chrono::milliseconds(std::llround(1000 * args.get_double("dist-timeout", 0.001, 86400)));
  c.dist.backend = args.get("dist-backend");
  RESIN_CHECK(c.dist.backend == "auto" || c.dist.backend == "gloo" || c.dist.backend == "nccl",
              "--dist-backend expects auto, gloo or nccl, got '", c.dist.backend, "'");
  c.sync_bn = args.get_flag("sync-bn");
  c.bucket_mb = args.get_double("bucket-mb", 0.001, 1 << 16);
  RESIN_CHECK(c.schedule == "cosine" || c.schedule == "multistep" || c.schedule == "constant",
              "--schedule expects cosine, multistep or constant, got '", c.schedule, "'");

  const train::TrainResult r = train::run_training(c);
  if (c.dist.rank != 0) return 0;  // rank 0 reports for the job
  std::printf("\nresult: %s on %s after %lld epochs (%lld steps%s): test top-1 %.2f%%, top-5 %.2f%%, best top-1 %.2f%%; "
              "%.1f minutes. Checkpoints in %s\n",
              c.model.c_str(), c.data.c_str(), static_cast<long long>(r.epochs_done), static_cast<long long>(r.steps),
              r.skipped_steps ? (", " + std::to_string(r.skipped_steps) + " skipped").c_str() : "", r.test_top1,
              r.test_top5, r.best_top1, r.seconds / 60.0, c.out.c_str());
  return 0;
}

int cmd_eval(const std::vector<std::string>& argv) {
  cli::Args args("resin eval", "Evaluates a checkpoint (last.ckpt, best.ckpt) or a weights file on a test split.");
  args.required("checkpoint", "checkpoint or .safetensors weights", "FILE")
      .option("data", "fashion-mnist", "fashion-mnist | mnist | cifar10 | cifar100", "NAME")
      .option("data-dir", "", "dataset directory", "DIR")
      .option("model", "", "network name (needed for weights-only files)", "NAME")
      .option("batch-size", "500", "images per batch", "B")
      .option("threads", "0", "compute threads (0: all cores)", "T")
      .option("device", "cpu", "cpu | cuda | cuda:N (cpu:1 checks device placement on the CPU)", "DEV");
  if (!args.parse(argv)) return 0;
  const auto r = train::evaluate_file(args.get("checkpoint"), args.get("data"), args.get("data-dir"), args.get("model"),
                                      args.get_int("batch-size", 1, 1 << 20), args.get_int("threads", 0, 1024),
                                      args.get("device"));
  std::printf("test loss %.4f, top-1 %.2f%%, top-5 %.2f%% on %lld images (%.1fs)\n", r.loss, r.top1, r.top5,
              static_cast<long long>(r.count), r.seconds);
  return 0;
}

}  // namespace resin::app
