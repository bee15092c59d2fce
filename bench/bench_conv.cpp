// Convolution throughput: resin (ops and backend kernels, NCHW and channels-last tensors) against
// plain oneDNN primitives created once with data already in the layouts they use (no reorders in
// the timed loop).
//
// Shapes: ResNet-50 convolutions at batch 16 and CIFAR-ResNet convolutions at batch 128 (no bias,
// as in ResNets, where batch norm follows), plus a tiny one whose time is mostly per-call cost.
// Counter GFLOP/s = 2 * MACs per second; backward-data and backward-weights have the same MAC
// count as forward.
//
// Names: <pass>/<path>/<shape>, path =
//   onednn         raw oneDNN, activations and weights format_tag::any (blocked): its best case
//   onednn_nhwc    raw oneDNN, nhwc activations, `any` weights kept blocked between calls
//   resin_cl       CpuBackend kernel, channels-last tensors (same kernels as onednn_nhwc, plus the
//                  per-call weight reorders from/to resin's plain OIHW weights)
//   resin_nchw     CpuBackend kernel, NCHW tensors (activations reordered to/from blocked)
//   resin_cl_bf16  resin_cl under AutocastGuard(DType::bf16): bf16 kernels, f32 tensors (the
//                  conversions of the inputs to bf16 included)
//   resin_op_*     resin::conv2d (output allocation included), forward only
//
// Run (one command line):
//   OMP_NUM_THREADS=2 ./build/bench/bench_conv --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// On a shared machine add RESIN_BENCH_CLOCK=cpu OMP_WAIT_POLICY=passive (see timed()).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "resin/backend/backend.h"
#include "resin/resin.h"

namespace {

using namespace resin;
using resin::bench::cpu_clock;
using resin::bench::timed;

struct Shape4 {
  const char* name;
  int64_t n, c, h, o, k, stride;
};

const Shape4 kShapes[] = {
    {"r50_56x56_64to64_3x3_b16", 16, 64, 56, 64, 3, 1},
    {"r50_56x56_256to64_1x1_b16", 16, 256, 56, 64, 1, 1},
    {"r50_28x28_128to128_3x3_b16", 16, 128, 28, 128, 3, 1},
    {"r50_14x14_256to256_3x3_b16", 16, 256, 14, 256, 3, 1},
    {"r50_7x7_512to512_3x3_b16", 16, 512, 7, 512, 3, 1},
    {"cifar_32x32_16to16_3x3_b128", 128, 16, 32, 16, 3, 1},
    {"cifar_16x16_32to32_3x3_b128", 128, 32, 16, 32, 3, 1},
    {"cifar_8x8_64to64_3x3_b128", 128, 64, 8, 64, 3, 1},
    // Tiny: the fixed per-call cost of the resin path shows up as a time difference.
    {"tiny_8x8_16to16_3x3_b1", 1, 16, 8, 16, 3, 1},
};

enum class Pass { fwd, bwd_data, bwd_weights };

int64_t out_size(const Shape4& s) { return (s.h + 2 * (s.k / 2) - s.k) / s.stride + 1; }

double gflop(const Shape4& s) {
  const double oh = static_cast<double>(out_size(s));
  return 2.0 * static_cast<double>(s.n * s.o) * oh * oh * static_cast<double>(s.c * s.k * s.k) * 1e-9;
}

void set_counter(benchmark::State& st, const Shape4& s) {
  st.counters["GFLOP/s"] = benchmark::Counter(gflop(s), benchmark::Counter::kIsIterationInvariantRate);
}

backend::Conv2dParams params(const Shape4& s) { return {s.stride, s.stride, s.k / 2, s.k / 2, 1, 1, 1}; }

Tensor act(const resin::Shape& sh, bool channels_last) {
  Tensor t = channels_last ? empty_strided(sh, channels_last_strides(sh)) : empty(sh);
  backend::backend_for(t).copy(randn(sh), t);
  return t;
}

// resin::conv2d, the public op (output allocation and layout choice included; no autograd).
void bm_resin_op(benchmark::State& st, Shape4 s, bool cl) {
  NoGradGuard ng;
  const Tensor x = act({s.n, s.c, s.h, s.h}, cl), w = randn({s.o, s.c, s.k, s.k});
  const Conv2dOptions o{.stride = {s.stride, s.stride}, .padding = {s.k / 2, s.k / 2}};
  timed(st, [&] { benchmark::DoNotOptimize(conv2d(x, w, Tensor(), o)); });
  set_counter(st, s);
}

// CpuBackend kernels on preallocated tensors.
void bm_resin(benchmark::State& st, Shape4 s, Pass pass, bool cl, bool bf16) {
  AutocastGuard autocast(bf16 ? DType::bf16 : DType::f32);
  const int64_t oh = out_size(s);
  const Tensor x = act({s.n, s.c, s.h, s.h}, cl), y = act({s.n, s.o, oh, oh}, cl);
  const Tensor w = randn({s.o, s.c, s.k, s.k});
  backend::Backend& be = backend::backend_for(x);
  const auto p = params(s);
  timed(st, [&] {
    switch (pass) {
      case Pass::fwd: be.conv2d_forward(x, w, Tensor(), y, p); break;
      case Pass::bwd_data: be.conv2d_backward_data(y, w, x, p); break;  // x receives gx
      case Pass::bwd_weights: be.conv2d_backward_weights(x, y, w, Tensor(), p); break;
    }
  });
  set_counter(st, s);
}

// Raw oneDNN: primitives built once; buffers already in the chosen formats. nhwc = false: activations
// format_tag::any (oneDNN's favourite, blocked); true: activations nhwc as a channels-last user
// would hand them over (weights are `any` in both).
void bm_onednn(benchmark::State& st, Shape4 s, Pass pass, bool nhwc) {
  using dnnl::memory;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const int64_t oh = out_size(s), pad = s.k / 2;
  const tag act = nhwc ? tag::nhwc : tag::any;
  const memory::desc src({s.n, s.c, s.h, s.h}, dt::f32, act), dst({s.n, s.o, oh, oh}, dt::f32, act);
  const memory::desc wei({s.o, s.c, s.k, s.k}, dt::f32, tag::any);
  const memory::dims strides{s.stride, s.stride}, dil{0, 0}, pads{pad, pad};
  dnnl::convolution_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei, dst, strides, dil,
       pads, pads},
      eng);
  auto filled = [&](const memory::desc& md) {
    memory m(md, eng);
    auto* p = static_cast<float*>(m.get_data_handle());
    for (size_t i = 0; i < md.get_size() / sizeof(float); ++i) p[i] = 0.001f * static_cast<float>(i % 1000);
    return m;
  };
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  if (pass == Pass::fwd) {
    prim = dnnl::convolution_forward(fwd);
    args = {{DNNL_ARG_SRC, filled(fwd.src_desc())},
            {DNNL_ARG_WEIGHTS, filled(fwd.weights_desc())},
            {DNNL_ARG_DST, filled(fwd.dst_desc())}};
  } else if (pass == Pass::bwd_data) {
    dnnl::convolution_backward_data::primitive_desc pd(
        {dnnl::algorithm::convolution_direct, src, wei, dst, strides, dil, pads, pads}, eng, fwd);
    prim = dnnl::convolution_backward_data(pd);
    args = {{DNNL_ARG_DIFF_DST, filled(pd.diff_dst_desc())},
            {DNNL_ARG_WEIGHTS, filled(pd.weights_desc())},
            {DNNL_ARG_DIFF_SRC, filled(pd.diff_src_desc())}};
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(
        {dnnl::algorithm::convolution_direct, src, wei, dst, strides, dil, pads, pads}, eng, fwd);
    prim = dnnl::convolution_backward_weights(pd);
    args = {{DNNL_ARG_SRC, filled(pd.src_desc())},
            {DNNL_ARG_DIFF_DST, filled(pd.diff_dst_desc())},
            {DNNL_ARG_DIFF_WEIGHTS, filled(pd.diff_weights_desc())}};
  }
  timed(st, [&] {
    prim.execute(strm, args);
    strm.wait();
  });
  st.SetLabel(fwd.impl_info_str());
  set_counter(st, s);
}

const char* pass_name(Pass p) {
  return p == Pass::fwd ? "fwd" : p == Pass::bwd_data ? "bwd_data" : "bwd_weights";
}

// Best-of statistics next to GB's median: on a shared machine the fastest repetition is the one
// least disturbed by other processes (read min for times, max for GFLOP/s).
template <class B>
void configure(B* b) {
  b->Unit(benchmark::kMillisecond);
  if (cpu_clock())
    b->UseManualTime();
  else
    b->UseRealTime();
  b->ComputeStatistics("min",
                       [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  b->ComputeStatistics("max",
                       [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
}

int register_all() {
  for (const Shape4& s : kShapes) {
    const std::string tail = std::string("/") + s.name;
    for (Pass pass : {Pass::fwd, Pass::bwd_data, Pass::bwd_weights}) {
      const std::string head = pass_name(pass);
      configure(benchmark::RegisterBenchmark((head + "/onednn" + tail).c_str(), bm_onednn, s, pass, false));
      configure(
          benchmark::RegisterBenchmark((head + "/onednn_nhwc" + tail).c_str(), bm_onednn, s, pass, true));
      configure(
          benchmark::RegisterBenchmark((head + "/resin_nchw" + tail).c_str(), bm_resin, s, pass, false, false));
      configure(
          benchmark::RegisterBenchmark((head + "/resin_cl" + tail).c_str(), bm_resin, s, pass, true, false));
      if (backend::bf16_compute_supported())
        configure(benchmark::RegisterBenchmark((head + "/resin_cl_bf16" + tail).c_str(), bm_resin, s, pass, true,
                                               true));
    }
    configure(benchmark::RegisterBenchmark(("fwd/resin_op_nchw" + tail).c_str(), bm_resin_op, s, false));
    configure(benchmark::RegisterBenchmark(("fwd/resin_op_cl" + tail).c_str(), bm_resin_op, s, true));
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace

BENCHMARK_MAIN();
