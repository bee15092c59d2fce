// Device-side helpers shared by the .cu files: strided offsets, launch geometry, bf16 bits, and
// the check after every launch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "resin/backend/cuda/kernels.h"
#include "resin/core/error.h"

namespace resin::backend::cuda {

// Offsets of element i (logical, row-major over ix.sizes) for each operand.
template <int N>
__device__ __forceinline__ void offsets_of(const Indexer<N>& ix, int64_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  if (ix.ndim == 1) {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = i * ix.strides[k][0];
    return;
  }
  for (int d = ix.ndim - 1; d >= 0; --d) {
    const int64_t size = ix.sizes[d];
    const int64_t c = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += c * ix.strides[k][d];
  }
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (capped; the loop covers the rest).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

#define RESIN_GRID_LOOP(i, n)                                                                       \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);         \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// A failed launch (bad configuration, no kernel image for this GPU) throws at once.
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  RESIN_CHECK(e == cudaSuccess, "CUDA kernel launch failed in ", what, ": ", cudaGetErrorString(e));
}

// Calls f(T{}) for f32 (float) or f64 (double); anything else is an error naming `what`.
template <class F>
void dispatch_float(ScalarType t, const char* what, F&& f) {
  if (t == ScalarType::f32) return f(float{});
  if (t == ScalarType::f64) return f(double{});
  RESIN_FAIL(what, ": the CUDA kernel takes f32 or f64");
}

// resin's BFloat16 conversions, bit for bit (round to nearest even; NaN stays a quiet NaN).
struct Bf16 {
  uint16_t bits;
};
__device__ __forceinline__ float bf16_to_float(Bf16 b) { return __uint_as_float(static_cast<uint32_t>(b.bits) << 16); }
__device__ __forceinline__ Bf16 float_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16{static_cast<uint16_t>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return Bf16{static_cast<uint16_t>(u >> 16)};
}

}  // namespace resin::backend::cuda
