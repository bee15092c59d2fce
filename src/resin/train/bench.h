// The measurement behind `resin bench`: training-step or inference throughput of any zoo or lab
// model on synthetic data (fixed random images and labels), timed per iteration after warm-up.
//
// A training iteration is what `resin train` does per batch: forward, cross-entropy, backward,
// an SGD step (Nesterov momentum 0.9, weight decay 5e-4 off for BN parameters and biases) and
// zero_grad. An inference iteration is a no-grad forward in eval mode, through
// models::fuse_for_inference's plan unless `fuse` is false.
//
// FLOPs are 2 × multiply-accumulates (count_macs: conv2d and matmul of one forward pass); a
// training step counts 3 forward passes' worth (forward, backward-data, backward-weights).
// Timings are wall-clock per iteration; nothing here asserts on them. dtype bf16 runs the forward
// passes under bf16 autocast (core/autocast.h): convolutions and matmuls in bf16, the rest in f32;
// the FLOP count is the same for both dtypes.
//
// On a GPU (device cuda[:N]) the model and the synthetic batch are moved there, each timed iteration
// ends by waiting for the device, inference runs the module op by op (the fused plan is oneDNN's; so
// it does on cpu:1), CPU time measures the host's share only, and peak_tensor_mib is the CUDA
// allocator's peak (cached_mib stays the host storage cache).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace resin::train {

struct BenchConfig {
  std::string model = "resnet20";
  std::string mode = "train";  // train | infer
  std::string dtype = "f32";   // f32 | bf16 | f16 (CUDA only): autocast compute type (train/precision.h)
  std::string device = "cpu";  // cpu | cuda | cuda:N (| cpu:1, the placement check)
  int64_t batch_size = 128;
  int64_t image_size = 32;
  int64_t channels = 3;
  int64_t classes = 10;
  int64_t threads = 0;  // 0: leave OpenMP's default
  int64_t warmup = 3;
  int64_t reps = 10;
  bool channels_last = false;
  bool fuse = true;  // inference: run models::fuse_for_inference's plan
  // Inference: print the fused plan's steps to stderr after the run (stdout stays clean for --json).
  bool print_plan = false;
  uint64_t seed = 0;
};

struct BenchResult {
  BenchConfig config;
  std::vector<double> seconds;  // one per timed iteration, in order
  std::vector<double> cpu_seconds;  // process CPU time (all threads) of each timed iteration
  double cpu_median_s = 0;          // robust to other processes' load: work done, not waited for
  double median_s = 0, p10_s = 0, p90_s = 0, min_s = 0;
  double images_per_s = 0;       // batch / median
  double gflop_per_iter = 0;     // 2 × MACs × batch (× 3 for training)
  double gflops = 0;             // gflop_per_iter / median
  int64_t macs_per_image = 0;    // one forward pass
  int64_t parameters = 0;
  double peak_rss_mib = 0;       // the process's peak resident set (getrusage)
  double peak_tensor_mib = 0;    // resin's allocator peak during the timed iterations (on a GPU: the
                                 // CUDA caching allocator's peak of allocated bytes)
  double cached_mib = 0;         // blocks the storage allocator keeps for reuse at the end
  int threads = 0;               // OpenMP threads used
  double load_avg = 0;           // 1-minute load average at the end (noise indicator)
  bool fused = false;            // inference ran a fused plan
  double unpacks_per_iter = 0;   // packed activations a layout-unaware op unpacked (tensor/packing.h)
};

// Throws resin::Error for unknown models, modes or dtypes and out-of-range sizes.
BenchResult run_bench(const BenchConfig& c);

// The q-quantile (0..1) of `v` by linear interpolation between order statistics.
double quantile(std::vector<double> v, double q);

std::string to_json(const BenchResult& r);
// Human-readable summary, a few lines.
std::string to_text(const BenchResult& r);

}  // namespace resin::train
