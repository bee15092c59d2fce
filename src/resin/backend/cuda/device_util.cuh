// Device-side helpers shared by the .cu files: strided offsets, launch geometry, bf16 and f16 bits,
// and the check after every launch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#if defined(RESIN_CUDA_EMULATION)
// The emulated GPU (tests/cuda_emulation): the kernels below compile as host C++ and launch() runs
// them on the CPU, one fiber per GPU thread.
#include "cuda_emulation/kernel.h"
#endif

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

#if !defined(RESIN_CUDA_EMULATION)
// kernel<<<grid, block, 0, stream>>>(args...), written as a call so that the same .cu files also
// build for the emulated GPU, which supplies its own launch().
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  kernel<<<grid, block, 0, stream>>>(static_cast<Params>(std::forward<Args>(args))...);
}
#endif

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

// resin's Float16 conversions (core/dtype.h), bit for bit: round to nearest even, ±inf beyond the
// range, NaN a quiet NaN with the payload's top bits.
struct F16 {
  uint16_t bits;
};
__device__ __forceinline__ float f16_to_float(F16 h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1fu,
                 m = h.bits & 0x3ffu;
  if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13));
  if (e != 0) return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
  return __uint_as_float(sign | __float_as_uint(static_cast<float>(m) * 5.9604644775390625e-08f));
}
__device__ __forceinline__ F16 float_to_f16(float f) {
  const uint32_t u = __float_as_uint(f);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return F16{static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu))};
  if (a >= 0x47800000u) return F16{static_cast<uint16_t>(sign | 0x7c00u)};
  if (a >= 0x38800000u) {
    uint32_t v = a - 0x38000000u;
    v += 0xfffu + ((v >> 13) & 1u);
    return F16{static_cast<uint16_t>(sign | (v >> 13))};
  }
  if (a > 0x33000000u) {
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e, k = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return F16{static_cast<uint16_t>(sign | (k + (rem > half || (rem == half && (k & 1u)))))};
  }
  return F16{sign};
}

}  // namespace resin::backend::cuda
