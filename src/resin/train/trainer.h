// The training loop behind `resin train`: epochs of SGD with a warm-up + cosine (or multi-step)
// schedule, evaluation after every epoch, a JSONL metrics file, atomic checkpoints (last and best),
// exact resume, and a guard that stops (or skips) on non-finite losses and gradients.
//
// Crash safety: every file is written atomically, and last.ckpt is written after best.ckpt and
// weights.safetensors, so a run killed at any moment (even inside a write) resumes with --resume
// from its last checkpoint and ends bitwise-identical to an uninterrupted run with the same thread
// count (tests/crash). --resume in a directory whose run was killed before its first checkpoint
// starts over. Temporaries of killed writes are removed on start. A failed write (disk full,
// directory not writable) stops training with an error naming the file; the previous checkpoint
// stays intact.
//
// Mixed precision: dtype bf16 runs every forward pass (training and evaluation) under bf16 autocast
// (core/autocast.h); parameters, optimizer state and checkpoints stay f32, and resume stays exact.
//
// Non-finite values: a NaN/Inf loss stops training naming the step; a NaN/Inf gradient stops it
// naming the step and the first module, in backward order, whose parameter gradient is non-finite.
// With skip_nonfinite such steps are skipped instead (no update; the schedule still advances) and
// counted: "skipped_steps" in every metrics record, in the checkpoint, and in TrainResult.
//
// Output directory:
//   config.json          the run's settings
//   metrics.jsonl        one JSON object per line: {"kind": "train"|"eval", ...}
//   last.ckpt            full training state after the latest epoch (or --checkpoint-every steps)
//   best.ckpt            the same for the best test top-1 so far
//   weights.safetensors  the latest weights alone, torchvision names (loads in PyTorch)
//
// Data parallelism (docs/distributed.md): with dist.world_size > 1 every process runs this
// function with its own dist.rank; batch_size is the GLOBAL batch (each rank takes
// batch_size / world_size of it, from its shard of the same epoch order), gradients are averaged
// across ranks before each step, and only rank 0 writes files or prints progress. Every rank
// evaluates its part of the test split; the metrics are summed over ranks. --resume: every rank
// loads the same last.ckpt (the output directory must be shared between machines).
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "resin/distributed/process_group.h"
#include "resin/tensor/tensor.h"

namespace resin::train {

struct TrainConfig {
  std::string model = "resnet20";
  std::string data = "fashion-mnist";
  std::string data_dir;  // empty: the dataset's default location
  std::string out = "runs/resnet20-fashion";
  int64_t epochs = 3;
  int64_t batch_size = 128;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = true;
  std::string schedule = "cosine";        // cosine | multistep | constant
  std::vector<int64_t> milestones;        // epochs, for multistep (default: 50% and 75% of epochs)
  double warmup_epochs = 0.2;             // linear warm-up from lr/10, in epochs (fractions allowed)
  double label_smoothing = 0.0;
  bool augment = true;
  uint64_t seed = 0;
  int64_t threads = 0;                    // 0: all cores
  int64_t workers = 1;                    // data loader threads
  bool resume = false;
  int64_t train_subset = 0, test_subset = 0;  // 0: all (first-n subsets, for quick runs)
  int64_t checkpoint_every = 0;           // also checkpoint every N steps (0: only after each epoch)
  int64_t max_steps = 0;                  // stop after this many steps in total (0: no limit)
  bool skip_nonfinite = false;            // skip steps with non-finite loss/gradients instead of stopping
  double clip_grad_norm = 0.0;            // 0: no clipping
  bool channels_last = false;             // keep activations NHWC (see docs/performance.md)
  std::string dtype = "f32";              // f32 | bf16 | f16: autocast of forward passes (train/precision.h)
  std::string loss_scale = "auto";        // auto | dynamic | none | a static scale (train/precision.h)
  std::string device = "cpu";             // cpu | cuda | cuda:N (model, batches and optimizer state live there)
  int64_t log_every = 50;                 // steps between train records in metrics.jsonl
  int progress = -1;                      // -1 auto (bar on a terminal), 0 plain lines, 1 bar
  distributed::DistConfig dist;           // this process's place in a data-parallel job; its backend
                                          // may also be "auto" (nccl on a GPU when built with it, else gloo)
  bool sync_bn = false;                   // BatchNorm statistics over all ranks (SyncBatchNorm kernel)
  double bucket_mb = 25;                  // gradient all-reduce bucket size, MiB
  // Test hook: called after each backward pass (1-based step, the named parameters), before the
  // non-finite check; tests poison gradients through it.
  std::function<void(int64_t, const std::vector<std::pair<std::string, Tensor>>&)> after_backward;
};

struct TrainResult {
  double test_loss = 0, test_top1 = 0, test_top5 = 0, best_top1 = 0;
  int64_t epochs_done = 0, steps = 0, skipped_steps = 0;
  double seconds = 0;
  // Data parallelism: time the gradient all-reduces ran, and the part training waited for them.
  double all_reduce_seconds = 0, all_reduce_wait_seconds = 0;
};

std::string to_json(const TrainConfig& c);
TrainResult run_training(const TrainConfig& c);

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t count = 0;
  double seconds = 0;
};
// Evaluates a checkpoint or weights file (model name and shape from a checkpoint, or given).
EvalResult evaluate_file(const std::string& path, const std::string& data, const std::string& data_dir,
                         const std::string& model_name, int64_t batch_size, int64_t threads,
                         const std::string& device = "cpu");

}  // namespace resin::train
