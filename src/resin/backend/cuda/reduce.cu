// Reductions, softmax, layer norm and the finiteness check. Sums accumulate in double for f32 and
// f64 alike (the reference backend does; on a GPU these kernels are memory-bound, so it is free).
#include <cmath>

#include "resin/backend/cuda/device_util.cuh"

namespace resin::backend::cuda {
namespace {

constexpr int kWarp = 32;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Max/min with the reference's NaN rule: a NaN anywhere wins.
__device__ __forceinline__ double combine(ReduceOp op, double a, double v) {
  if (op == ReduceOp::max) return (v > a || isnan(v)) ? v : a;
  if (op == ReduceOp::min) return (v < a || isnan(v)) ? v : a;
  return a + v;
}

__device__ __forceinline__ double warp_combine(ReduceOp op, double v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = combine(op, v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ double initial(ReduceOp op) {
  return op == ReduceOp::max ? -INFINITY : (op == ReduceOp::min ? INFINITY : 0.0);
}

// Block-wide combine of one value per thread (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result.
__device__ double block_combine(ReduceOp op, double v) {
  __shared__ double part[32];
  v = warp_combine(op, v);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < warps ? part[lane] : initial(op);
  return warp_combine(op, v);
}

__device__ double block_sum(double v) { return block_combine(ReduceOp::sum, v); }

// ---- reduce
template <class T>
__device__ __forceinline__ double reduce_range(ReduceOp op, const T* x, const Indexer<1>& red, int64_t begin,
                                               int64_t end, int64_t step) {
  double acc = initial(op);
  for (int64_t r = begin; r < end; r += step) {
    int64_t o[1];
    offsets_of(red, r, o);
    acc = combine(op, acc, static_cast<double>(x[o[0]]));
  }
  return acc;
}

template <class T>
__device__ __forceinline__ void store(ReduceOp op, T* out, double acc, int64_t count) {
  *out = static_cast<T>(op == ReduceOp::mean ? acc / static_cast<double>(count) : acc);
}

// One thread per output (few elements per output, or many outputs).
template <class T>
__global__ void reduce_thread_kernel(ReduceOp op, Indexer<2> keep, Indexer<1> red, const T* x, T* out) {
  RESIN_GRID_LOOP(i, keep.numel) {
    int64_t o[2];
    offsets_of(keep, i, o);
    store(op, out + o[1], reduce_range(op, x + o[0], red, 0, red.numel, 1), red.numel);
  }
}

// One block per output, or per (output, split) when `partial` is set: then each block reduces one
// chunk of the reduced range into partial[i * splits + split].
template <class T>
__global__ void reduce_block_kernel(ReduceOp op, Indexer<2> keep, Indexer<1> red, const T* x, T* out,
                                    double* partial) {
  const int64_t splits = gridDim.y, chunk = (red.numel + splits - 1) / splits;
  const int64_t begin = blockIdx.y * chunk, end = begin + chunk < red.numel ? begin + chunk : red.numel;
  for (int64_t i = blockIdx.x; i < keep.numel; i += gridDim.x) {
    int64_t o[2];
    offsets_of(keep, i, o);
    const double acc = block_combine(op, reduce_range(op, x + o[0], red, begin + threadIdx.x, end, blockDim.x));
    if (threadIdx.x == 0) {
      if (partial) partial[i * splits + blockIdx.y] = acc;
      else store(op, out + o[1], acc, red.numel);
    }
  }
}

template <class T>
__global__ void reduce_finish_kernel(ReduceOp op, Indexer<2> keep, int64_t splits, int64_t count,
                                     const double* partial, T* out) {
  RESIN_GRID_LOOP(i, keep.numel) {
    int64_t o[2];
    offsets_of(keep, i, o);
    double acc = initial(op);
    for (int64_t k = 0; k < splits; ++k) acc = combine(op, acc, partial[i * splits + k]);
    store(op, out + o[1], acc, count);
  }
}

constexpr int64_t kSplitWork = 1 << 16;  // reduced elements per block when splitting

int64_t splits_for(int64_t outputs, int64_t reduced) {
  if (outputs >= 256 || reduced < 2 * kSplitWork) return 1;
  const int64_t s = (reduced + kSplitWork - 1) / kSplitWork;
  return s > 1024 ? 1024 : s;
}

// ---- softmax: one warp per lane
template <class T>
__global__ void softmax_kernel(Lanes l, const T* x, T* y, bool log_out) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int lane_id = threadIdx.x % kWarp;
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; w < l.lanes;
       w += warps) {
    const int64_t base = (w / l.inner) * l.outer_stride + (w % l.inner) * l.inner_stride;
    double mx = -INFINITY;
    for (int64_t i = lane_id; i < l.len; i += kWarp) mx = fmax(mx, static_cast<double>(x[base + i * l.stride]));
    mx = warp_combine(ReduceOp::max, mx);
    double sum = 0;
    for (int64_t i = lane_id; i < l.len; i += kWarp) sum += exp(static_cast<double>(x[base + i * l.stride]) - mx);
    sum = warp_sum(sum);
    const double log_sum = log(sum);
    for (int64_t i = lane_id; i < l.len; i += kWarp) {
      const double z = static_cast<double>(x[base + i * l.stride]) - mx;
      y[base + i * l.stride] = static_cast<T>(log_out ? z - log_sum : exp(z) / sum);
    }
  }
}

template <class T>
__global__ void softmax_backward_kernel(Lanes l, const T* y, const T* gy, T* gx, bool log_out) {
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int lane_id = threadIdx.x % kWarp;
  for (int64_t w = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; w < l.lanes;
       w += warps) {
    const int64_t base = (w / l.inner) * l.outer_stride + (w % l.inner) * l.inner_stride;
    double dot = 0;
    for (int64_t i = lane_id; i < l.len; i += kWarp) {
      const int64_t k = base + i * l.stride;
      dot += log_out ? static_cast<double>(gy[k]) : static_cast<double>(gy[k]) * static_cast<double>(y[k]);
    }
    dot = warp_sum(dot);
    for (int64_t i = lane_id; i < l.len; i += kWarp) {
      const int64_t k = base + i * l.stride;
      const double g = gy[k], v = y[k];
      gx[k] = static_cast<T>(log_out ? g - exp(v) * dot : v * (g - dot));
    }
  }
}

// ---- layer norm: one block per row
template <class T>
__global__ void layer_norm_kernel(int64_t M, int64_t N, const T* x, const T* gamma, const T* beta, T* y, T* mean,
                                  T* rstd, double eps) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const T* row = x + i * N;
    double s = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) s += row[j];
    const double m = block_sum(s) / static_cast<double>(N);
    double v = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) v += (row[j] - m) * (row[j] - m);
    const double r = 1.0 / sqrt(block_sum(v) / static_cast<double>(N) + eps);
    if (threadIdx.x == 0) {
      mean[i] = static_cast<T>(m);
      rstd[i] = static_cast<T>(r);
    }
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
      y[i * N + j] = static_cast<T>((row[j] - m) * r * (gamma ? static_cast<double>(gamma[j]) : 1.0) +
                                    (beta ? static_cast<double>(beta[j]) : 0.0));
  }
}

template <class T>
__global__ void layer_norm_backward_kernel(int64_t M, int64_t N, const T* x, const T* gy, const T* mean, const T* rstd,
                                           const T* gamma, T* gx) {
  for (int64_t i = blockIdx.x; i < M; i += gridDim.x) {
    const double m = mean[i], r = rstd[i];
    double s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const double xhat = (x[i * N + j] - m) * r;
      const double gh = static_cast<double>(gy[i * N + j]) * (gamma ? static_cast<double>(gamma[j]) : 1.0);
      s1 += gh;
      s2 += gh * xhat;
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2);
    const double n = static_cast<double>(N);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const double xhat = (x[i * N + j] - m) * r;
      const double gh = static_cast<double>(gy[i * N + j]) * (gamma ? static_cast<double>(gamma[j]) : 1.0);
      gx[i * N + j] = static_cast<T>(r / n * (n * gh - s1 - xhat * s2));
    }
  }
}

// Column sums for ggamma (of gy * xhat) and gbeta (of gy): one thread per column.
template <class T>
__global__ void layer_norm_param_kernel(int64_t M, int64_t N, const T* x, const T* gy, const T* mean, const T* rstd,
                                        T* ggamma, T* gbeta) {
  RESIN_GRID_LOOP(j, N) {
    double gg = 0, gb = 0;
    for (int64_t i = 0; i < M; ++i) {
      const double g = gy[i * N + j];
      gg += g * ((x[i * N + j] - static_cast<double>(mean[i])) * static_cast<double>(rstd[i]));
      gb += g;
    }
    if (ggamma) ggamma[j] = static_cast<T>(gg);
    if (gbeta) gbeta[j] = static_cast<T>(gb);
  }
}

template <class T>
__global__ void nonfinite_kernel(const T* x, int64_t n, int* flag) {
  RESIN_GRID_LOOP(i, n) {
    if (!isfinite(x[i])) *flag = 1;  // racing writers all store 1
  }
}

unsigned warp_blocks(int64_t lanes) { return blocks_for(lanes, kThreads / kWarp); }

}  // namespace

int64_t reduce_scratch_bytes(ScalarType, int64_t outputs, int64_t reduced) {
  const int64_t s = splits_for(outputs, reduced);
  return s > 1 ? outputs * s * static_cast<int64_t>(sizeof(double)) : 0;
}

void launch_reduce(cudaStream_t s, ReduceOp op, ScalarType t, const Indexer<2>& keep, const Indexer<1>& red,
                   const void* x, void* out, void* scratch) {
  dispatch_float(t, "reduce", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x);
    T* op_ = static_cast<T*>(out);
    const int64_t splits = splits_for(keep.numel, red.numel);
    if (red.numel <= 64 || keep.numel >= 4096) {
      launch(reduce_thread_kernel<T>, blocks_for(keep.numel), kThreads, s, op, keep, red, xp, op_);
    } else if (splits == 1) {
      const unsigned grid = static_cast<unsigned>(keep.numel < 65535 ? keep.numel : 65535);
      launch(reduce_block_kernel<T>, grid, kThreads, s, op, keep, red, xp, op_, nullptr);
    } else {
      double* partial = static_cast<double*>(scratch);
      launch(reduce_block_kernel<T>, dim3(static_cast<unsigned>(keep.numel), static_cast<unsigned>(splits)),
             kThreads, s, op, keep, red, xp, op_, partial);
      launch(reduce_finish_kernel<T>, blocks_for(keep.numel), kThreads, s, op, keep, splits, red.numel,
             partial, op_);
    }
  });
  check_launch("reduce");
}

void launch_softmax(cudaStream_t s, ScalarType t, const Lanes& l, const void* x, void* y, bool log) {
  dispatch_float(t, "softmax", [&](auto tag) {
    using T = decltype(tag);
    launch(softmax_kernel<T>, warp_blocks(l.lanes), kThreads, s, l, static_cast<const T*>(x),
           static_cast<T*>(y), log);
  });
  check_launch("softmax");
}

void launch_softmax_backward(cudaStream_t s, ScalarType t, const Lanes& l, const void* y, const void* gy, void* gx,
                             bool log) {
  dispatch_float(t, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    launch(softmax_backward_kernel<T>, warp_blocks(l.lanes), kThreads, s, l, static_cast<const T*>(y),
           static_cast<const T*>(gy), static_cast<T*>(gx), log);
  });
  check_launch("softmax_backward");
}

void launch_layer_norm(cudaStream_t s, ScalarType t, int64_t M, int64_t N, const void* x, const void* gamma,
                       const void* beta, void* y, void* mean, void* rstd, double eps) {
  if (M == 0) return;
  dispatch_float(t, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const unsigned grid = static_cast<unsigned>(M < 65535 ? M : 65535);
    launch(layer_norm_kernel<T>, grid, kThreads, s, M, N, static_cast<const T*>(x),
           static_cast<const T*>(gamma), static_cast<const T*>(beta), static_cast<T*>(y),
           static_cast<T*>(mean), static_cast<T*>(rstd), eps);
  });
  check_launch("layer_norm");
}

void launch_layer_norm_backward(cudaStream_t s, ScalarType t, int64_t M, int64_t N, const void* x, const void* gy,
                                const void* mean, const void* rstd, const void* gamma, void* gx, void* ggamma,
                                void* gbeta) {
  dispatch_float(t, "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *xp = static_cast<const T*>(x), *gyp = static_cast<const T*>(gy), *mp = static_cast<const T*>(mean),
            *rp = static_cast<const T*>(rstd);
    if (gx && M > 0) {
      const unsigned grid = static_cast<unsigned>(M < 65535 ? M : 65535);
      launch(layer_norm_backward_kernel<T>, grid, kThreads, s, M, N, xp, gyp, mp, rp,
             static_cast<const T*>(gamma), static_cast<T*>(gx));
    }
    if (ggamma || gbeta)
      launch(layer_norm_param_kernel<T>, blocks_for(N), kThreads, s, M, N, xp, gyp, mp, rp,
             static_cast<T*>(ggamma), static_cast<T*>(gbeta));
  });
  check_launch("layer_norm_backward");
}

void launch_nonfinite(cudaStream_t s, ScalarType t, const void* x, int64_t n, int* flag) {
  if (n == 0) return;
  dispatch_float(t, "all_finite", [&](auto tag) {
    using T = decltype(tag);
    launch(nonfinite_kernel<T>, blocks_for(n), kThreads, s, static_cast<const T*>(x), n, flag);
  });
  check_launch("all_finite");
}

}  // namespace resin::backend::cuda
