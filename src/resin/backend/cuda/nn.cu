// Pooling, row/index kernels, batch-norm helpers and the optimizer updates.
//
// Pooling backward gathers: one thread per input element visits the output windows that contain
// it in (oh, ow) order and adds in the element type, which is the order and rounding of the
// reference backend's scatter loop, so results match it exactly and no atomics are needed.
#include <cmath>

#include "resin/backend/cuda/device_util.cuh"

namespace resin::backend::cuda {
namespace {

// Element i of a [N, C, H, W] walk in the tensor's physical order (channels innermost when the
// strides say channels-last) so that neighbouring threads touch neighbouring addresses.
struct Nchw {
  int64_t n, c, h, w;
};
__device__ __forceinline__ Nchw unravel(int64_t i, int64_t C, int64_t H, int64_t W, bool channels_last) {
  Nchw r;
  if (channels_last) {
    r.c = i % C;
    i /= C;
    r.w = i % W;
    i /= W;
    r.h = i % H;
    r.n = i / H;
  } else {
    r.w = i % W;
    i /= W;
    r.h = i % H;
    i /= H;
    r.c = i % C;
    r.n = i / C;
  }
  return r;
}

__device__ __forceinline__ int64_t at(const int64_t* st, const Nchw& p) {
  return p.n * st[0] + p.c * st[1] + p.h * st[2] + p.w * st[3];
}

template <class T>
__global__ void max_pool_kernel(PoolGeometry g, const T* x, T* y, int64_t* idx) {
  const bool cl = g.y_strides[1] == 1 && g.C > 1;
  RESIN_GRID_LOOP(i, g.N * g.C * g.OH * g.OW) {
    const Nchw o = unravel(i, g.C, g.OH, g.OW, cl);
    const int64_t h0 = o.h * g.sh - g.ph, w0 = o.w * g.sw - g.pw;
    T best = T(0);
    int64_t arg = -1;
    for (int64_t kh = 0; kh < g.kh; ++kh) {
      const int64_t ih = h0 + kh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.kw; ++kw) {
        const int64_t iw = w0 + kw;
        if (iw < 0 || iw >= g.W) continue;
        const T v = x[at(g.x_strides, Nchw{o.n, o.c, ih, iw})];
        if (arg < 0 || v > best) {
          best = v;
          arg = ih * g.W + iw;
        }
      }
    }
    y[at(g.y_strides, o)] = arg < 0 ? T(-INFINITY) : best;
    idx[((o.n * g.C + o.c) * g.OH + o.h) * g.OW + o.w] = arg;
  }
}

__device__ __forceinline__ int64_t window_count(const PoolGeometry& g, int64_t h0, int64_t w0) {
  if (g.count_include_pad) return g.kh * g.kw;
  const int64_t hs = h0 < 0 ? 0 : h0, he = h0 + g.kh < g.H ? h0 + g.kh : g.H;
  const int64_t ws = w0 < 0 ? 0 : w0, we = w0 + g.kw < g.W ? w0 + g.kw : g.W;
  return (he > hs ? he - hs : 0) * (we > ws ? we - ws : 0);
}

template <class T>
__global__ void avg_pool_kernel(PoolGeometry g, const T* x, T* y) {
  const bool cl = g.y_strides[1] == 1 && g.C > 1;
  RESIN_GRID_LOOP(i, g.N * g.C * g.OH * g.OW) {
    const Nchw o = unravel(i, g.C, g.OH, g.OW, cl);
    const int64_t h0 = o.h * g.sh - g.ph, w0 = o.w * g.sw - g.pw;
    double sum = 0;
    for (int64_t ih = h0 < 0 ? 0 : h0; ih < h0 + g.kh && ih < g.H; ++ih)
      for (int64_t iw = w0 < 0 ? 0 : w0; iw < w0 + g.kw && iw < g.W; ++iw)
        sum += static_cast<double>(x[at(g.x_strides, Nchw{o.n, o.c, ih, iw})]);
    const int64_t count = window_count(g, h0, w0);
    y[at(g.y_strides, o)] = static_cast<T>(count ? sum / static_cast<double>(count) : 0.0);
  }
}

// Output rows/cols whose window contains input row ih: oh * s - p <= ih <= oh * s - p + k - 1.
__device__ __forceinline__ void windows_over(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo,
                                             int64_t& hi) {
  const int64_t a = i + p - k + 1;
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  hi = (i + p) / s;
  if (hi > out - 1) hi = out - 1;
}

template <class T>
__global__ void max_pool_backward_kernel(PoolGeometry g, const T* gy, const int64_t* idx, T* gx) {
  const bool cl = g.x_strides[1] == 1 && g.C > 1;
  RESIN_GRID_LOOP(i, g.N * g.C * g.H * g.W) {
    const Nchw p = unravel(i, g.C, g.H, g.W, cl);
    int64_t oh0, oh1, ow0, ow1;
    windows_over(p.h, g.kh, g.sh, g.ph, g.OH, oh0, oh1);
    windows_over(p.w, g.kw, g.sw, g.pw, g.OW, ow0, ow1);
    const int64_t me = p.h * g.W + p.w;
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        if (idx[((p.n * g.C + p.c) * g.OH + oh) * g.OW + ow] == me) acc += gy[at(g.y_strides, Nchw{p.n, p.c, oh, ow})];
    gx[at(g.x_strides, p)] = acc;
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(PoolGeometry g, const T* gy, T* gx) {
  const bool cl = g.x_strides[1] == 1 && g.C > 1;
  RESIN_GRID_LOOP(i, g.N * g.C * g.H * g.W) {
    const Nchw p = unravel(i, g.C, g.H, g.W, cl);
    int64_t oh0, oh1, ow0, ow1;
    windows_over(p.h, g.kh, g.sh, g.ph, g.OH, oh0, oh1);
    windows_over(p.w, g.kw, g.sw, g.pw, g.OW, ow0, ow1);
    T acc = T(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const double gv = gy[at(g.y_strides, Nchw{p.n, p.c, oh, ow})];
        acc += static_cast<T>(gv / static_cast<double>(window_count(g, oh * g.sh - g.ph, ow * g.sw - g.pw)));
      }
    gx[at(g.x_strides, p)] = acc;
  }
}

template <class T>
__global__ void gather_rows_kernel(int64_t n, const T* x, int64_t xs0, int64_t xs1, const int64_t* index, int64_t is0,
                                   T* out, int64_t os0) {
  RESIN_GRID_LOOP(i, n) out[i * os0] = x[i * xs0 + index[i * is0] * xs1];
}

template <class T>
__global__ void scatter_rows_add_kernel(int64_t n, const T* g, int64_t gs0, const int64_t* index, int64_t is0, T* gx,
                                        int64_t gxs0, int64_t gxs1) {
  RESIN_GRID_LOOP(i, n) gx[i * gxs0 + index[i * is0] * gxs1] += g[i * gs0];
}

template <class T>
__global__ void index_select_kernel(int64_t n, int64_t d, const T* table, int64_t ts0, int64_t ts1,
                                    const int64_t* index, T* out, int64_t os0, int64_t os1) {
  RESIN_GRID_LOOP(k, n * d) {
    const int64_t i = k / d, j = k % d;
    out[i * os0 + j * os1] = table[index[i] * ts0 + j * ts1];
  }
}

template <class T>
__global__ void index_add_kernel(int64_t n, int64_t d, const T* g, int64_t gs0, int64_t gs1, const int64_t* index,
                                 T* gtable, int64_t ts0, int64_t ts1) {
  RESIN_GRID_LOOP(k, n * d) {
    const int64_t i = k / d, j = k % d;
    atomicAdd(gtable + index[i] * ts0 + j * ts1, g[i * gs0 + j * gs1]);
  }
}

template <class T>
__global__ void var_from_inv_std_kernel(int64_t n, const T* inv_std, double eps, T* var) {
  RESIN_GRID_LOOP(i, n) {
    const double r = inv_std[i];
    // Clamped: for a (nearly) constant channel 1/r² ≈ eps, and cuDNN's rounding could leave -1e-12.
    const double v = 1.0 / (r * r) - eps;
    var[i] = static_cast<T>(v < 0.0 ? 0.0 : v);  // NaN stays NaN (fmax would hide a diverged batch)
  }
}

template <class T>
__global__ void rsqrt_eps_kernel(int64_t n, const T* v, double eps, T* out) {
  RESIN_GRID_LOOP(i, n) out[i] = static_cast<T>(1.0 / sqrt(static_cast<double>(v[i]) + eps));
}

// The CPU loops of optim/sgd.cpp and optim/adamw.cpp, operation for operation (this file is built
// with -fmad=false, so only the explicit fma() calls fuse, as on the CPU).
template <class T>
__global__ void sgd_kernel(int64_t n, T* p, const T* g, T* buf, SgdScalars s) {
  const T wd = static_cast<T>(s.weight_decay), momentum = static_cast<T>(s.momentum),
          keep = static_cast<T>(s.one_minus_dampening), neg_lr = static_cast<T>(s.neg_lr);
  RESIN_GRID_LOOP(k, n) {
    T d = g[k];
    if (s.use_weight_decay) d = fma(p[k], wd, d);
    if (s.use_momentum) {
      const T b = s.first ? d : fma(d, keep, buf[k] * momentum);
      buf[k] = b;
      d = s.nesterov ? fma(b, momentum, d) : b;
    }
    p[k] = fma(d, neg_lr, p[k]);
  }
}

template <class T>
__global__ void adamw_kernel(int64_t n, T* p, const T* g, T* m, T* v, T* vmax, AdamWScalars s) {
  const T decay = static_cast<T>(s.decay), beta1 = static_cast<T>(s.beta1),
          one_minus_beta1 = static_cast<T>(s.one_minus_beta1), beta2 = static_cast<T>(s.beta2),
          one_minus_beta2 = static_cast<T>(s.one_minus_beta2), bc2_sqrt = static_cast<T>(s.bias_correction2_sqrt),
          eps = static_cast<T>(s.eps), neg_step_size = static_cast<T>(s.neg_step_size);
  RESIN_GRID_LOOP(k, n) {
    const T gk = g[k];
    const T pk = p[k] * decay;
    const T mk = fma(gk, one_minus_beta1, m[k] * beta1);
    const T vk = fma(one_minus_beta2 * gk, gk, v[k] * beta2);
    m[k] = mk;
    v[k] = vk;
    T second = vk;
    if (s.amsgrad) {
      const T old = vmax[k];
      second = (old != old || vk != vk) ? old + vk : (old > vk ? old : vk);
      vmax[k] = second;
    }
    const T denom = sqrt(second) / bc2_sqrt + eps;
    p[k] = pk + (neg_step_size * mk) / denom;
  }
}

}  // namespace

void launch_max_pool(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* x, void* y, int64_t* idx) {
  dispatch_float(t, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    launch(max_pool_kernel<T>, blocks_for(g.N * g.C * g.OH * g.OW), kThreads, s, g, static_cast<const T*>(x),
           static_cast<T*>(y), idx);
  });
  check_launch("max_pool2d");
}

void launch_avg_pool(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* x, void* y) {
  dispatch_float(t, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    launch(avg_pool_kernel<T>, blocks_for(g.N * g.C * g.OH * g.OW), kThreads, s, g, static_cast<const T*>(x),
           static_cast<T*>(y));
  });
  check_launch("avg_pool2d");
}

void launch_max_pool_backward(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* gy, const int64_t* idx,
                              void* gx) {
  dispatch_float(t, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    launch(max_pool_backward_kernel<T>, blocks_for(g.N * g.C * g.H * g.W), kThreads, s, g,
           static_cast<const T*>(gy), idx, static_cast<T*>(gx));
  });
  check_launch("max_pool2d_backward");
}

void launch_avg_pool_backward(cudaStream_t s, ScalarType t, const PoolGeometry& g, const void* gy, void* gx) {
  dispatch_float(t, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    launch(avg_pool_backward_kernel<T>, blocks_for(g.N * g.C * g.H * g.W), kThreads, s, g,
           static_cast<const T*>(gy), static_cast<T*>(gx));
  });
  check_launch("avg_pool2d_backward");
}

void launch_gather_rows(cudaStream_t s, ScalarType t, int64_t n, const void* x, int64_t xs0, int64_t xs1,
                        const int64_t* index, int64_t is0, void* out, int64_t os0) {
  if (n == 0) return;
  dispatch_float(t, "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    launch(gather_rows_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<const T*>(x), xs0, xs1, index,
           is0, static_cast<T*>(out), os0);
  });
  check_launch("gather_rows");
}

void launch_scatter_rows_add(cudaStream_t s, ScalarType t, int64_t n, const void* g, int64_t gs0,
                             const int64_t* index, int64_t is0, void* gx, int64_t gxs0, int64_t gxs1) {
  if (n == 0) return;
  dispatch_float(t, "scatter_rows_add", [&](auto tag) {
    using T = decltype(tag);
    launch(scatter_rows_add_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<const T*>(g), gs0, index,
           is0, static_cast<T*>(gx), gxs0, gxs1);
  });
  check_launch("scatter_rows_add");
}

void launch_index_select(cudaStream_t s, ScalarType t, int64_t n, int64_t d, const void* table, int64_t ts0,
                         int64_t ts1, const int64_t* index, void* out, int64_t os0, int64_t os1) {
  if (n * d == 0) return;
  dispatch_float(t, "index_select", [&](auto tag) {
    using T = decltype(tag);
    launch(index_select_kernel<T>, blocks_for(n * d), kThreads, s, n, d, static_cast<const T*>(table), ts0,
           ts1, index, static_cast<T*>(out), os0, os1);
  });
  check_launch("index_select");
}

void launch_index_add(cudaStream_t s, ScalarType t, int64_t n, int64_t d, const void* g, int64_t gs0, int64_t gs1,
                      const int64_t* index, void* gtable, int64_t ts0, int64_t ts1) {
  if (n * d == 0) return;
  dispatch_float(t, "index_add", [&](auto tag) {
    using T = decltype(tag);
    launch(index_add_kernel<T>, blocks_for(n * d), kThreads, s, n, d, static_cast<const T*>(g), gs0, gs1,
           index, static_cast<T*>(gtable), ts0, ts1);
  });
  check_launch("index_add");
}

void launch_var_from_inv_std(cudaStream_t s, ScalarType t, int64_t n, const void* inv_std, double eps, void* var) {
  dispatch_float(t, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    launch(var_from_inv_std_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<const T*>(inv_std), eps,
           static_cast<T*>(var));
  });
  check_launch("batch_norm");
}

void launch_rsqrt_eps(cudaStream_t s, ScalarType t, int64_t n, const void* v, double eps, void* out) {
  dispatch_float(t, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    launch(rsqrt_eps_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<const T*>(v), eps,
           static_cast<T*>(out));
  });
  check_launch("batch_norm");
}

void launch_sgd(cudaStream_t s, ScalarType t, int64_t n, void* p, const void* g, void* buf, const SgdScalars& a) {
  if (n == 0) return;
  dispatch_float(t, "SGD", [&](auto tag) {
    using T = decltype(tag);
    launch(sgd_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<T*>(p), static_cast<const T*>(g),
           static_cast<T*>(buf), a);
  });
  check_launch("SGD");
}

void launch_adamw(cudaStream_t s, ScalarType t, int64_t n, void* p, const void* g, void* m, void* v, void* vmax,
                  const AdamWScalars& a) {
  if (n == 0) return;
  dispatch_float(t, "AdamW", [&](auto tag) {
    using T = decltype(tag);
    launch(adamw_kernel<T>, blocks_for(n), kThreads, s, n, static_cast<T*>(p), static_cast<const T*>(g),
           static_cast<T*>(m), static_cast<T*>(v), static_cast<T*>(vmax), a);
  });
  check_launch("AdamW");
}

}  // namespace resin::backend::cuda
