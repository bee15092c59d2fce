// Convolution on cuDNN (its v7-style API, still shipped by cuDNN 9 in libcudnn_cnn): forward,
// backward data, backward filter, with the algorithm chosen once per geometry and cached. Under bf16
// or f16 autocast (core/autocast.h) f32 operands are converted for the call and results converted back.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "resin/backend/cuda/cuda_backend.h"
#include "resin/backend/cuda/cudnn_util.h"

namespace resin::backend {

using namespace cuda;

namespace cuda {

cudnnDataType_t cudnn_type(DType t) {
  if (t == DType::f32) return CUDNN_DATA_FLOAT;
  if (t == DType::f64) return CUDNN_DATA_DOUBLE;
  if (t == DType::bf16) return CUDNN_DATA_BFLOAT16;
  if (t == DType::f16) return CUDNN_DATA_HALF;
  RESIN_FAIL("cuDNN kernels take f32, f64, bf16 or f16 tensors, got ", t);
}

TensorDesc::TensorDesc(DType t, const Shape& s, Layout l) {
  check_cudnn(cudnnCreateTensorDescriptor(&d_), "cudnnCreateTensorDescriptor");
  const Strides st = layout_strides(s, l);
  auto i = [](int64_t v) {
    RESIN_CHECK(v <= INT32_MAX, "cuDNN: size or stride ", v, " does not fit in 32 bits");
    return static_cast<int>(v);
  };
  check_cudnn(cudnnSetTensor4dDescriptorEx(d_, cudnn_type(t), i(s[0]), i(s[1]), i(s[2]), i(s[3]), i(st[0]), i(st[1]),
                                           i(st[2]), i(st[3])),
              "cudnnSetTensor4dDescriptorEx");
}

FilterDesc::FilterDesc(DType t, const Shape& s, Layout l) {
  check_cudnn(cudnnCreateFilterDescriptor(&d_), "cudnnCreateFilterDescriptor");
  check_cudnn(cudnnSetFilter4dDescriptor(d_, cudnn_type(t), l == Layout::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                         static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2]),
                                         static_cast<int>(s[3])),
              "cudnnSetFilter4dDescriptor");
}

const void* blend_one(DType t) {
  static const float f = 1.0f;
  static const double d = 1.0;
  return t == DType::f64 ? static_cast<const void*>(&d) : static_cast<const void*>(&f);
}
const void* blend_zero(DType t) {
  static const float f = 0.0f;
  static const double d = 0.0;
  return t == DType::f64 ? static_cast<const void*>(&d) : static_cast<const void*>(&f);
}

}  // namespace cuda

namespace {

enum class ConvKind { fwd, bwd_data, bwd_filter };

bool env_on(const char* name) {
  const char* e = std::getenv(name);
  return e && std::strcmp(e, "1") == 0;
}

// t: the operands' type. bf16/f16 convolutions accumulate in f32 (cuDNN's BFLOAT16_CONFIG and
// PSEUDO_HALF_CONFIG) on tensor cores.
class ConvDesc {
 public:
  ConvDesc(DType t, const Conv2dParams& p) {
    const bool half = t == DType::bf16 || t == DType::f16;
    check_cudnn(cudnnCreateConvolutionDescriptor(&d_), "cudnnCreateConvolutionDescriptor");
    check_cudnn(
        cudnnSetConvolution2dDescriptor(d_, static_cast<int>(p.pad_h), static_cast<int>(p.pad_w),
                                        static_cast<int>(p.stride_h), static_cast<int>(p.stride_w),
                                        static_cast<int>(p.dilation_h), static_cast<int>(p.dilation_w),
                                        CUDNN_CROSS_CORRELATION, cudnn_type(half ? DType::f32 : t)),
        "cudnnSetConvolution2dDescriptor");
    check_cudnn(cudnnSetConvolutionGroupCount(d_, static_cast<int>(p.groups)), "cudnnSetConvolutionGroupCount");
    // FMA math keeps f32 convolutions in f32 (no TF32 tensor cores) unless asked.
    static const bool tf32 = env_on("RESIN_CUDA_TF32");
    math_ = half ? CUDNN_TENSOR_OP_MATH : tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    check_cudnn(cudnnSetConvolutionMathType(d_, math_), "cudnnSetConvolutionMathType");
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d_); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
  cudnnConvolutionDescriptor_t get() const { return d_; }
  cudnnMathType_t asked_math() const { return math_; }  // before an algorithm's own is set

 private:
  cudnnConvolutionDescriptor_t d_ = nullptr;
  cudnnMathType_t math_ = CUDNN_DEFAULT_MATH;
};

// One convolution call: x/dx, w/dw and y/dy in the call's layout, with their descriptors.
struct ConvCall {
  cudnnHandle_t handle;
  DType dtype;
  const TensorDesc& x;
  const FilterDesc& w;
  const ConvDesc& conv;
  const TensorDesc& y;
  void* xp;
  void* wp;
  void* yp;
};

struct Choice {
  int algo = 0;
  size_t workspace = 0;
  // cuDNN runs an algorithm as fast as it listed it only with the math type it listed it with.
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

std::mutex g_mu;
std::unordered_map<std::string, Choice> g_cache;
ConvAlgoCacheStats g_stats;

constexpr size_t kFindWorkspace = size_t{256} << 20;  // what the benchmark mode lets an algorithm use
constexpr size_t kMaxWorkspace = size_t{1} << 30;     // heuristics' candidates needing more are skipped

// The usable candidates; an f32 convolution kept in f32 (FMA math) skips any listed with tensor-core
// (TF32) math.
template <class Perf>
void keep_ok(const Perf* perf, int n, const ConvCall& c, std::vector<Choice>& out) {
  const cudnnMathType_t asked = c.conv.asked_math();
  for (int i = 0; i < n; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (c.dtype == DType::f32 && asked == CUDNN_FMA_MATH && perf[i].mathType != CUDNN_FMA_MATH) continue;
    out.push_back({static_cast<int>(perf[i].algo), perf[i].memory, perf[i].mathType});
  }
}

// Candidates, best first: cuDNN's heuristics, or timed runs when RESIN_CUDNN_BENCHMARK=1 (and there
// is memory for their workspace).
std::vector<Choice> candidates(ConvKind k, const ConvCall& c, Device dev) {
  static const bool benchmark = env_on("RESIN_CUDNN_BENCHMARK");
  // The heuristics answer for the descriptor's math type, which a refused cached choice changed.
  check_cudnn(cudnnSetConvolutionMathType(c.conv.get(), c.conv.asked_math()), "cudnnSetConvolutionMathType");
  std::vector<Choice> out;
  int n = 0;
  Tensor ws;
  void* wsp = nullptr;
  // Timed runs need a large workspace; without memory for it, the heuristics choose this time.
  bool timed = benchmark;
  if (timed) {
    try {
      ws = empty(Shape{static_cast<int64_t>(kFindWorkspace)}, {.dtype = DType::u8, .device = dev});
      wsp = ws.raw_data();
    } catch (const OutOfMemoryError&) {
      timed = false;
    }
  }
  switch (k) {
    case ConvKind::fwd: {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      check_cudnn(timed ? cudnnFindConvolutionForwardAlgorithmEx(
                              c.handle, c.x.get(), c.xp, c.w.get(), c.wp, c.conv.get(), c.y.get(), c.yp,
                              CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf, wsp, kFindWorkspace)
                        : cudnnGetConvolutionForwardAlgorithm_v7(c.handle, c.x.get(), c.w.get(), c.conv.get(),
                                                                 c.y.get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                                 &n, perf),
                  "choosing a convolution forward algorithm");
      keep_ok(perf, n, c, out);
      break;
    }
    case ConvKind::bwd_data: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      check_cudnn(timed ? cudnnFindConvolutionBackwardDataAlgorithmEx(
                              c.handle, c.w.get(), c.wp, c.y.get(), c.yp, c.conv.get(), c.x.get(), c.xp,
                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf, wsp, kFindWorkspace)
                        : cudnnGetConvolutionBackwardDataAlgorithm_v7(
                              c.handle, c.w.get(), c.y.get(), c.conv.get(), c.x.get(),
                              CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf),
                  "choosing a convolution backward-data algorithm");
      keep_ok(perf, n, c, out);
      break;
    }
    case ConvKind::bwd_filter: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      check_cudnn(timed ? cudnnFindConvolutionBackwardFilterAlgorithmEx(
                              c.handle, c.x.get(), c.xp, c.y.get(), c.yp, c.conv.get(), c.w.get(), c.wp,
                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf, wsp, kFindWorkspace)
                        : cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                              c.handle, c.x.get(), c.y.get(), c.conv.get(), c.w.get(),
                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf),
                  "choosing a convolution backward-filter algorithm");
      keep_ok(perf, n, c, out);
      break;
    }
  }
  return out;
}

cudnnStatus_t execute(ConvKind k, const ConvCall& c, const Choice& ch, void* ws) {
  const void* one = blend_one(c.dtype);
  const void* zero = blend_zero(c.dtype);
  const cudnnStatus_t m = cudnnSetConvolutionMathType(c.conv.get(), ch.math);
  if (m != CUDNN_STATUS_SUCCESS) return m;
  switch (k) {
    case ConvKind::fwd:
      return cudnnConvolutionForward(c.handle, one, c.x.get(), c.xp, c.w.get(), c.wp, c.conv.get(),
                                     static_cast<cudnnConvolutionFwdAlgo_t>(ch.algo), ws, ch.workspace, zero,
                                     c.y.get(), c.yp);
    case ConvKind::bwd_data:
      return cudnnConvolutionBackwardData(c.handle, one, c.w.get(), c.wp, c.y.get(), c.yp, c.conv.get(),
                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(ch.algo), ws, ch.workspace, zero,
                                          c.x.get(), c.xp);
    case ConvKind::bwd_filter:
      return cudnnConvolutionBackwardFilter(c.handle, one, c.x.get(), c.xp, c.y.get(), c.yp, c.conv.get(),
                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(ch.algo), ws, ch.workspace,
                                            zero, c.w.get(), c.wp);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

std::string cache_key(ConvKind k, DType t, Layout l, const Shape& x, const Shape& w, const Shape& y,
                      const Conv2dParams& p, int device) {
  return str_cat(static_cast<int>(k), "|", static_cast<int>(t), "|", static_cast<int>(l), "|", device, "|", x, w, y,
                 "|", p.stride_h, ",", p.stride_w, ",", p.pad_h, ",", p.pad_w, ",", p.dilation_h, ",", p.dilation_w,
                 ",", p.groups);
}

// cuDNN 9 sub-codes its statuses (3000 = NOT_SUPPORTED, 3001...); cuDNN 8's are small numbers.
int status_category(cudnnStatus_t s) {
#if CUDNN_MAJOR >= 9
  return static_cast<int>(s) / 1000 * 1000;
#else
  return static_cast<int>(s);
#endif
}
// An algorithm that refuses this call (another may accept it), as opposed to a failure of the call.
bool refused(cudnnStatus_t s) {
  const int category = status_category(s);
  return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM;
}

// Runs the cached choice, or finds one: candidates in order until one executes (an algorithm the
// heuristics offer may still reject the configuration; the next one is tried then). The cache key
// includes the operands' 16-byte alignment (a view at an odd offset may not run the algorithm chosen
// for aligned data); a cached choice that is refused anyway, or whose workspace does not fit now,
// is forgotten and a new one found.
void run(ConvKind k, const ConvCall& c, const std::string& shape_key, Device dev) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0 ? '1' : '0'; };
  const std::string key = str_cat(shape_key, "|", aligned(c.xp), aligned(c.wp), aligned(c.yp));
  auto with_workspace = [&](const Choice& ch) {
    Tensor ws = ch.workspace ? empty(Shape{static_cast<int64_t>(ch.workspace)}, {.dtype = DType::u8, .device = dev})
                             : Tensor();
    return execute(k, c, ch, ws.defined() ? ws.raw_data() : nullptr);
  };
  std::optional<Choice> cached;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) cached = it->second;
    ++(cached ? g_stats.hits : g_stats.misses);
  }
  if (cached) {
    cudnnStatus_t r = CUDNN_STATUS_NOT_SUPPORTED;
    try {
      r = with_workspace(*cached);
    } catch (const OutOfMemoryError&) {  // no memory for its workspace now: find one that fits
    }
    if (r == CUDNN_STATUS_SUCCESS) return;
    if (!refused(r)) check_cudnn(r, "convolution");
    std::lock_guard<std::mutex> lock(g_mu);
    g_cache.erase(key);
  }
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
  bool no_memory = false;
  for (const Choice& ch : candidates(k, c, dev)) {
    if (ch.workspace > kMaxWorkspace) continue;  // e.g. FFT algorithms asking for gigabytes
    try {
      last = with_workspace(ch);
    } catch (const OutOfMemoryError&) {  // no memory for this one's workspace: the next may need less
      no_memory = true;
      continue;
    }
    if (last == CUDNN_STATUS_SUCCESS) {
      std::lock_guard<std::mutex> lock(g_mu);
      g_cache[key] = ch;
      return;
    }
    if (!refused(last)) break;
  }
  RESIN_CHECK(!no_memory || last != CUDNN_STATUS_NOT_SUPPORTED,
              "convolution: out of GPU memory for the workspace of every algorithm cuDNN offered");
  check_cudnn(
      last,
      c.dtype == DType::bf16
          ? "bf16 convolution (no algorithm accepted the configuration; cuDNN's bf16 kernels need a GPU "
            "of compute capability 8.0 or newer)"
          : "convolution (no algorithm accepted the configuration)");
}

void check_conv(const char* op, const Tensor& x, const Tensor& w, const Tensor& y) {
  RESIN_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, op, ": expected 4-D tensors");
  RESIN_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), op, ": dtype mismatch");
}

// An operand of a convolution computing in ct, in layout l: t itself (in_layout ignores the strides
// of size-1 dims), or a converted copy.
Tensor operand(const Tensor& t, DType ct, Layout l) {
  return t.dtype() == ct ? to_layout(t, l) : converted(t, ct, layout_strides(t.shape(), l));
}

// Where cuDNN writes an output computed in ct: the proxy's work tensor, or (under autocast) a ct
// tensor in the same layout that land() converts into it.
Tensor compute_out(const OutProxy& o, DType ct, Layout l) {
  const Tensor& w = o.work;
  return w.dtype() == ct
             ? w
             : empty_strided(w.shape(), layout_strides(w.shape(), l), {.dtype = ct, .device = w.device()});
}
void land(const Tensor& out, const OutProxy& o) {
  if (!out.is_same(o.work)) cuda_backend().copy(out, o.work);
}

}  // namespace

ConvAlgoCacheStats CudaBackend::conv_cache_stats() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stats;
}

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                                 const Conv2dParams& p) {
  check_operands("conv2d", x.device(), {&x, &w, &bias, &y});
  check_conv("conv2d", x, w, y);
  if (y.numel() == 0) return;
  const Layout l = layout_of(x);
  const DType ct = autocast_compute(x.dtype());
  const Tensor xl = operand(x, ct, l), wl = operand(w, ct, l);
  const OutProxy yo = layout_out(y, l);
  const Tensor yc = compute_out(yo, ct, l);
  auto& ctx = enter(x);
  const TensorDesc xd(ct, x.shape(), l), yd(ct, y.shape(), l);
  const FilterDesc wd(ct, w.shape(), l);
  const ConvDesc cd(ct, p);
  const ConvCall call{ctx.cudnn, ct, xd, wd, cd, yd, ptr(xl), ptr(wl), ptr(yc)};
  run(ConvKind::fwd, call, cache_key(ConvKind::fwd, ct, l, x.shape(), w.shape(), y.shape(), p, ctx.device),
      x.device());
  land(yc, yo);
  if (bias.defined()) {  // added in y's own type (f32 under autocast)
    const Tensor b = dense_on_device(bias);
    const TensorDesc bd(b.dtype(), Shape{1, b.numel(), 1, 1}, Layout::nchw), yt(y.dtype(), y.shape(), l);
    check_cudnn(cudnnAddTensor(ctx.cudnn, blend_one(y.dtype()), bd.get(), ptr(b), blend_one(y.dtype()),
                               yt.get(), ptr(yo.work)),
                "conv2d bias");
  }
  yo.finish();
}

void CudaBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dParams& p) {
  check_operands("conv2d_backward_data", gx.device(), {&gy, &w, &gx});
  check_conv("conv2d_backward_data", gx, w, gy);
  if (gx.numel() == 0) return;
  const Layout l = layout_of(gx);
  const OutProxy gxo = layout_out(gx, l);
  if (gy.numel() == 0) {  // no output positions: nothing flows back
    fill(gxo.work, 0.0);
  } else {
    const DType ct = autocast_compute(gx.dtype());
    const Tensor gyl = operand(gy, ct, l), wl = operand(w, ct, l);
    const Tensor gxc = compute_out(gxo, ct, l);
    auto& ctx = enter(gx);
    const TensorDesc xd(ct, gx.shape(), l), yd(ct, gy.shape(), l);
    const FilterDesc wd(ct, w.shape(), l);
    const ConvDesc cd(ct, p);
    const ConvCall call{ctx.cudnn, ct, xd, wd, cd, yd, ptr(gxc), ptr(wl), ptr(gyl)};
    run(ConvKind::bwd_data, call,
        cache_key(ConvKind::bwd_data, ct, l, gx.shape(), w.shape(), gy.shape(), p, ctx.device), gx.device());
    land(gxc, gxo);
  }
  gxo.finish();
}

void CudaBackend::conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw, const Tensor& gb,
                                          const Conv2dParams& p) {
  check_operands("conv2d_backward_weights", x.device(), {&x, &gy, &gw, &gb});
  check_conv("conv2d_backward_weights", x, gw, gy);
  // The layout follows x (the activation); gy is brought into it and gw comes out in the matching
  // filter format, then lands in gw's own layout.
  const Layout l = layout_of(x);
  const bool empty_batch = x.numel() == 0 || gy.numel() == 0;
  if (gw.numel() > 0) {
    const OutProxy gwo = layout_out(gw, l);
    if (empty_batch) {
      fill(gwo.work, 0.0);
    } else {
      const DType ct = autocast_compute(x.dtype());
      const Tensor xl = operand(x, ct, l), gyl = operand(gy, ct, l);
      const Tensor gwc = compute_out(gwo, ct, l);
      auto& ctx = enter(x);
      const TensorDesc xd(ct, x.shape(), l), yd(ct, gy.shape(), l);
      const FilterDesc wd(ct, gw.shape(), l);
      const ConvDesc cd(ct, p);
      const ConvCall call{ctx.cudnn, ct, xd, wd, cd, yd, ptr(xl), ptr(gwc), ptr(gyl)};
      run(ConvKind::bwd_filter, call,
          cache_key(ConvKind::bwd_filter, ct, l, x.shape(), gw.shape(), gy.shape(), p, ctx.device),
          x.device());
      land(gwc, gwo);
    }
    gwo.finish();
  }
  if (gb.defined()) {
    const OutProxy gbo = contiguous_out(gb);
    if (empty_batch) {
      fill(gbo.work, 0.0);
    } else {
      const Tensor gyl = to_layout(gy, l);
      auto& ctx = enter(x);
      const TensorDesc yd(gy.dtype(), gy.shape(), l), bd(gb.dtype(), Shape{1, gb.numel(), 1, 1}, Layout::nchw);
      check_cudnn(cudnnConvolutionBackwardBias(ctx.cudnn, blend_one(x.dtype()), yd.get(), ptr(gyl),
                                               blend_zero(x.dtype()), bd.get(), ptr(gbo.work)),
                  "conv2d bias gradient");
    }
    gbo.finish();
  }
}

}  // namespace resin::backend
