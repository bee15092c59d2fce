// Timing for the Google Benchmark binaries in bench/: wall time by default, or CPU time with
// RESIN_BENCH_CLOCK=cpu (manual timing), which the other tenants of a shared machine barely move.
#pragma once
#include <benchmark/benchmark.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace resin::bench {

// RESIN_BENCH_CLOCK=cpu: each iteration is timed by the process CPU clock (all threads) divided by
// OMP_NUM_THREADS, i.e. the wall time the work would take on that many dedicated cores. For shared
// machines, where wall time mostly measures the other tenants; run it with OMP_WAIT_POLICY=passive
// so idle OpenMP threads sleep instead of spinning. Serial work is under-counted by up to the
// thread count (it occupies one core while the others sleep), which flatters the resin path's
// single-threaded bookkeeping slightly.
inline bool cpu_clock() {
  static const bool on = [] {
    const char* e = std::getenv("RESIN_BENCH_CLOCK");
    return e && std::string(e) == "cpu";
  }();
  return on;
}

inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

template <class F>
void timed(benchmark::State& st, F&& f) {
  if (!cpu_clock()) {
    for (auto _ : st) f();
    return;
  }
  const double threads = std::max(1, omp_get_max_threads());
  for (auto _ : st) {
    const double t0 = process_cpu_seconds();
    f();
    st.SetIterationTime((process_cpu_seconds() - t0) / threads);
  }
}

}  // namespace resin::bench
