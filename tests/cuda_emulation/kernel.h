// Device code on the emulated GPU: what nvcc provides to a kernel (thread and block indices,
// barriers, warp shuffles, atomics, bit casts, math overloads) as host C++, and launch(), which runs
// a kernel's grid on the CPU with one fiber per GPU thread. Included by backend/cuda/device_util.cuh
// when RESIN_CUDA_EMULATION is defined, so resin's .cu files compile unchanged with g++.
//
// What it checks on every launch, as a GPU would fail: the launch configuration (block and grid
// limits), the stream (an emulated stream of the current device), and every pointer argument (null or
// inside live device memory of the current device: a host pointer is an illegal address). Barriers
// and shuffles are exact: __syncthreads() waits for every live thread of the block, a full-mask
// shuffle for all 32 lanes (a lane that has exited is a divergence error, undefined on a GPU).
#pragma once
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// The emulated thread's coordinates, set by the scheduler before it resumes a fiber.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
// One block runs at a time on a host thread, so block-shared memory is a per-host-thread static.
#define __shared__ static thread_local

namespace resin::cuda_emulation {

void* host_view(const void* device_pointer);  // memory.h

// Suspends the calling emulated thread until every live thread of its block has arrived.
void block_barrier();
// Exchanges `bytes` bytes of `value` among the 32 lanes of the calling thread's warp: each lane gets
// lane (lane ^ lane_mask)'s value.
void warp_exchange_xor(unsigned mask, void* value, int bytes, int lane_mask);

// Runs body() as every thread of the grid of `kernel`; reports failures through cudaGetLastError().
void run_grid(const void* kernel, dim3 grid, dim3 block, cudaStream_t stream,
              const std::vector<const void*>& pointers, const std::function<void()>& body);

// A kernel argument as the kernel sees it: pointers into device memory become their host view.
template <class T>
T on_host(const T& v) {
  if constexpr (std::is_pointer_v<T>)
    return static_cast<T>(host_view(v));
  else
    return v;
}

template <class T>
void collect_pointer(const T& v, std::vector<const void*>& out) {
  if constexpr (std::is_pointer_v<T>) out.push_back(static_cast<const void*>(v));
}

}  // namespace resin::cuda_emulation

inline void __syncthreads() { resin::cuda_emulation::block_barrier(); }

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  resin::cuda_emulation::warp_exchange_xor(mask, &v, sizeof(T), lane_mask);
  return v;
}

// Emulated threads of one grid never run at the same time, so a plain read-modify-write is atomic.
template <class T>
T atomicAdd(T* address, T v) {
  const T old = *address;
  *address = old + v;
  return old;
}

inline float __uint_as_float(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t __float_as_uint(float f) { return std::bit_cast<uint32_t>(f); }

namespace resin::backend::cuda {

// CUDA's math library overloads float and double; the host's are in std.
using std::erf;
using std::exp;
using std::fabs;
using std::fma;
using std::fmax;
using std::isfinite;
using std::isnan;
using std::log;
using std::log1p;
using std::pow;
using std::sqrt;
using std::tanh;

// kernel<<<grid, block, 0, stream>>>(args...) on the CPU.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  const std::tuple<std::decay_t<Params>...> params(static_cast<Params>(std::forward<Args>(args))...);
  std::vector<const void*> pointers;
  std::apply([&](const auto&... p) { (cuda_emulation::collect_pointer(p, pointers), ...); }, params);
  // The kernel reaches device memory through its host view (device addresses fault on the host).
  const auto host_params = std::apply(
      [](const auto&... p) { return std::tuple<std::decay_t<Params>...>(cuda_emulation::on_host(p)...); },
      params);
  cuda_emulation::run_grid(reinterpret_cast<const void*>(kernel), grid, block, stream, pointers,
                           [&] { std::apply(kernel, host_params); });
}

}  // namespace resin::backend::cuda
