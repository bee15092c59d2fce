// The memory-bound kernels between convolutions in ResNet training: batch norm + ReLU (forward with
// batch statistics, backward from the ReLU's output) and the residual add + ReLU, through the CPU
// backend, on the activations of CIFAR ResNets at batch 128 (the three stages, 3x32x32 input) and
// of the Fashion-MNIST ResNet-20 (28x28), in both layouts. Counter GB/s: bytes the kernel must
// move at least (each operand read or written once), per second.
//
// Run (one thread: kernel time, stable under load with the CPU clock):
//   RESIN_BENCH_CLOCK=cpu OMP_NUM_THREADS=1 ./build/bench/bench_norm --benchmark_repetitions=5
//     --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "bench_clock.h"
#include "resin/backend/backend.h"
#include "resin/resin.h"

namespace {

using namespace resin;
using resin::bench::timed;

struct Act {
  const char* name;
  int64_t n, c, h;
};

const Act kActs[] = {
    {"cifar_128x16x32x32", 128, 16, 32},
    {"cifar_128x32x16x16", 128, 32, 16},
    {"cifar_128x64x8x8", 128, 64, 8},
    {"fashion_128x16x28x28", 128, 16, 28},
};

Tensor act(const Act& a, bool channels_last) {
  const Shape sh{a.n, a.c, a.h, a.h};
  Tensor t = channels_last ? empty_strided(sh, channels_last_strides(sh)) : empty(sh);
  backend::backend_for(t).copy(randn(sh), t);
  return t;
}

void set_bytes(benchmark::State& st, const Act& a, int tensors) {
  const double bytes = 4.0 * static_cast<double>(a.n * a.c * a.h * a.h) * tensors;
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

struct Bn {
  Tensor x, y, gy, gx, gamma, beta, mean, var, ggamma, gbeta;
  Bn(const Act& a, bool cl)
      : x(act(a, cl)),
        y(empty_like(x)),
        gy(act(a, cl)),
        gx(empty_like(x)),
        gamma(randn({a.c})),
        beta(randn({a.c})),
        mean(empty({a.c})),
        var(empty({a.c})),
        ggamma(empty({a.c})),
        gbeta(empty({a.c})) {}
};

// Reads x twice (statistics, then the map) and writes y: at least 2 tensors of traffic.
void bm_bn_relu_fwd(benchmark::State& st, Act a, bool cl) {
  Bn b(a, cl);
  auto& be = backend::backend_for(b.x);
  timed(st, [&] { be.batch_norm_relu_forward_training(b.x, b.gamma, b.beta, b.y, b.mean, b.var, 1e-5); });
  set_bytes(st, a, 2);
}

// Reads x, y and gy, writes gx: at least 4 tensors.
void bm_bn_relu_bwd(benchmark::State& st, Act a, bool cl) {
  Bn b(a, cl);
  auto& be = backend::backend_for(b.x);
  be.batch_norm_relu_forward_training(b.x, b.gamma, b.beta, b.y, b.mean, b.var, 1e-5);
  timed(st, [&] {
    be.batch_norm_relu_backward(b.x, b.y, b.gy, b.mean, b.var, b.gamma, b.gx, b.ggamma, b.gbeta, 1e-5);
  });
  set_bytes(st, a, 4);
}

// Reads a and b, writes y: 3 tensors.
void bm_add_relu(benchmark::State& st, Act a, bool cl) {
  const Tensor x = act(a, cl), r = act(a, cl), y = empty_like(x);
  auto& be = backend::backend_for(x);
  timed(st, [&] { be.add_relu(x, r, y); });
  set_bytes(st, a, 3);
}

const bool registered = [] {
  for (const Act& a : kActs)
    for (bool cl : {true, false}) {
      const std::string tail = std::string(cl ? "/cl/" : "/nchw/") + a.name;
      for (auto [name, fn] :
           {std::pair{"bn_relu_fwd", &bm_bn_relu_fwd}, std::pair{"bn_relu_bwd", &bm_bn_relu_bwd},
            std::pair{"add_relu", &bm_add_relu}}) {
        auto* b =
            benchmark::RegisterBenchmark((name + tail).c_str(), fn, a, cl)->Unit(benchmark::kMillisecond);
        if (resin::bench::cpu_clock()) b->UseManualTime();
      }
    }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
