#include "resin/train/bench.h"

#include <omp.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "resin/autograd/grad_mode.h"
#include "resin/core/autocast.h"
#include "resin/core/cuda.h"
#include "resin/models/fuse.h"
#include "resin/models/zoo.h"
#include "resin/optim/optim.h"
#include "resin/tensor/packing.h"
#include "resin/tensor/storage_cache.h"
#include "resin/train/metrics.h"
#include "resin/train/precision.h"

namespace resin::train {

namespace {

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : 0.0;
}

double cpu_now() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Times `reps` calls of step(): wall-clock and process CPU seconds of each.
// With ONEDNN_VERBOSE set, a marker line precedes each timed iteration in the same stream as
// oneDNN's lines, so bench/onednn_profile can cut out one iteration.
template <class F>
void time_iterations(int64_t reps, F&& step, BenchResult& r) {
  const bool markers = std::getenv("ONEDNN_VERBOSE") != nullptr;
  for (int64_t i = 0; i < reps; ++i) {
    if (markers) {
      std::printf("resin_bench,iteration,%lld\n", static_cast<long long>(i));
      std::fflush(stdout);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_now();
    step();
    r.cpu_seconds.push_back(cpu_now() - c0);
    r.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

}  // namespace

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

BenchResult run_bench(const BenchConfig& c) {
  RESIN_CHECK(c.mode == "train" || c.mode == "infer", "bench: --mode expects train or infer, got '", c.mode, "'");
  const DType compute = autocast_type(c.dtype, c.device);
  const Device dev = cuda::usable_device(c.device);  // no CUDA build, no GPU, no such index: before any work
  const bool gpu = dev.type == DeviceType::cuda;
  const bool fuse = c.fuse && dev == Device::cpu();  // the fused plan is oneDNN's; elsewhere op by op
  RESIN_CHECK(
      c.mode == "train" || c.dtype == "f32" || !fuse,
      "bench: --mode infer --dtype bf16 runs the module op by op under autocast: add --no-fuse (the fused "
      "inference plan is f32 only)");
  RESIN_CHECK(c.batch_size > 0 && c.image_size > 0 && c.channels > 0 && c.classes > 0,
              "bench: batch size, image size, channels and classes must be positive");
  RESIN_CHECK(c.reps > 0 && c.warmup >= 0, "bench: --reps must be positive and --warmup non-negative");
  if (c.threads > 0) omp_set_num_threads(static_cast<int>(c.threads));

  BenchResult r;
  r.config = c;
  r.threads = omp_get_max_threads();
  manual_seed(c.seed);
  auto model = models::create_model(c.model, {.in_channels = c.channels, .num_classes = c.classes,
                                               .image_size = c.image_size});
  r.parameters = model->parameter_count();
  r.macs_per_image = models::count_macs(*model, c.channels, c.image_size);
  const bool train = c.mode == "train";
  r.gflop_per_iter = 2.0 * static_cast<double>(r.macs_per_image) * static_cast<double>(c.batch_size) *
                     (train ? 3.0 : 1.0) * 1e-9;

  model->to(dev);
  Tensor x = randn({c.batch_size, c.channels, c.image_size, c.image_size});
  if (c.channels_last) x = x.contiguous(MemoryFormat::channels_last);
  x = x.to(dev);
  Tensor labels = randint(0, c.classes, {c.batch_size}).to(dev);

  // Warm-up, then the timed iterations (peak memory and unpacks counted over those only). A GPU
  // iteration ends when the device has finished it.
  auto measure = [&](const std::function<void()>& body) {
    auto step = [&] {
      body();
      if (gpu) cuda::synchronize(dev.index);
    };
    for (int64_t i = 0; i < c.warmup; ++i) step();
    reset_peak_bytes();
    if (gpu) cuda::reset_peak_memory(dev.index);
    const int64_t unpacks = unpack_count();
    time_iterations(c.reps, step, r);
    r.unpacks_per_iter = static_cast<double>(unpack_count() - unpacks) / static_cast<double>(c.reps);
  };
  if (train) {
    model->train();
    optim::Sgd opt(optim::weight_decay_param_groups(model->named_parameters(), 0.01, 5e-4),
                   {.momentum = 0.9, .nesterov = true});
    auto step = [&] {
      Tensor loss;
      {
        AutocastGuard autocast(compute);  // the backward nodes remember it
        loss = cross_entropy(model->forward(x), labels);
      }
      loss.backward();
      opt.step();
      opt.zero_grad();
      RESIN_CHECK(std::isfinite(loss.item()), "bench: non-finite loss");
    };
    measure(step);
  } else {
    model->eval();
    NoGradGuard ng;
    nn::ModulePtr run = model;
    if (fuse) {
      run = models::fuse_for_inference(model);
      r.fused = models::is_fused_plan(*run);
    }
    auto step = [&] {
      AutocastGuard autocast(compute);
      Tensor y = run->forward(x);
      RESIN_CHECK(y.dim() == 2 && y.size(0) == c.batch_size, "bench: unexpected output shape ", y.shape());
    };
    measure(step);
    if (c.print_plan) std::fprintf(stderr, "%s", r.fused ? models::fused_plan_summary(*run).c_str() : "(not fused)\n");
  }
  r.peak_tensor_mib = static_cast<double>(gpu ? cuda::memory_stats(dev.index).peak_allocated_bytes
                                              : allocator_stats().peak_bytes) /
                      (1024.0 * 1024.0);
  r.median_s = quantile(r.seconds, 0.5);
  r.p10_s = quantile(r.seconds, 0.1);
  r.p90_s = quantile(r.seconds, 0.9);
  r.min_s = *std::min_element(r.seconds.begin(), r.seconds.end());
  r.cpu_median_s = quantile(r.cpu_seconds, 0.5);
  r.cached_mib = static_cast<double>(storage_cache_bytes()) / (1024.0 * 1024.0);
  r.images_per_s = static_cast<double>(c.batch_size) / r.median_s;
  r.gflops = r.gflop_per_iter / r.median_s;
  r.peak_rss_mib = peak_rss_mib();
  r.load_avg = load_average();
  return r;
}

std::string to_json(const BenchResult& r) {
  const BenchConfig& c = r.config;
  // clang-format off
  std::string j = train::to_json(JsonRecord{
      {"model", c.model}, {"mode", c.mode}, {"dtype", c.dtype}, {"device", c.device}, {"batch_size", c.batch_size},
      {"image_size", c.image_size}, {"channels", c.channels}, {"classes", c.classes},
      {"channels_last", c.channels_last}, {"fused", r.fused}, {"threads", static_cast<int64_t>(r.threads)},
      {"warmup", c.warmup}, {"reps", c.reps}, {"median_ms", r.median_s * 1e3}, {"p10_ms", r.p10_s * 1e3},
      {"p90_ms", r.p90_s * 1e3}, {"min_ms", r.min_s * 1e3}, {"cpu_median_ms", r.cpu_median_s * 1e3},
      {"images_per_s", r.images_per_s},
      {"gflop_per_iter", r.gflop_per_iter}, {"gflops", r.gflops}, {"macs_per_image", r.macs_per_image},
      {"parameters", r.parameters}, {"peak_rss_mib", r.peak_rss_mib}, {"peak_tensor_mib", r.peak_tensor_mib},
      {"cached_mib", r.cached_mib}, {"load_avg", r.load_avg}, {"unpacks_per_iter", r.unpacks_per_iter}});
  // clang-format on
  std::ostringstream ms;
  ms.precision(6);
  for (size_t i = 0; i < r.seconds.size(); ++i) ms << (i ? ", " : "") << r.seconds[i] * 1e3;
  std::ostringstream cs;
  cs.precision(6);
  for (size_t i = 0; i < r.cpu_seconds.size(); ++i) cs << (i ? ", " : "") << r.cpu_seconds[i] * 1e3;
  j.pop_back();  // the closing brace: append the per-iteration times
  return j + ", \"times_ms\": [" + ms.str() + "], \"cpu_times_ms\": [" + cs.str() + "]}";
}

std::string to_text(const BenchResult& r) {
  const BenchConfig& c = r.config;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "%s %s %s on %s: batch %lld, %lldx%lldx%lld%s%s, %d threads, %lld+%lld iterations\n"
                "  median %.2f ms/iter (p10 %.2f, p90 %.2f, min %.2f) = %.1f images/s, %.1f GFLOP/s "
                "(%.3f GFLOP/iter); CPU %.2f ms/iter\n"
                "  peak RSS %.0f MiB, peak tensors %.0f MiB, packed activations unpacked %.1f/iter, load "
                "average %.2f\n",
                c.model.c_str(), c.mode.c_str(), c.dtype.c_str(), c.device.c_str(),
                static_cast<long long>(c.batch_size), static_cast<long long>(c.channels),
                static_cast<long long>(c.image_size), static_cast<long long>(c.image_size),
                c.channels_last ? ", channels-last" : "", r.fused ? ", fused plan" : "", r.threads,
                static_cast<long long>(c.warmup), static_cast<long long>(c.reps), r.median_s * 1e3,
                r.p10_s * 1e3, r.p90_s * 1e3, r.min_s * 1e3, r.images_per_s, r.gflops, r.gflop_per_iter,
                r.cpu_median_s * 1e3, r.peak_rss_mib, r.peak_tensor_mib, r.unpacks_per_iter, r.load_avg);
  return buf;
}

}  // namespace resin::train
