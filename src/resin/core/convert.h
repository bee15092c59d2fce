// Floating point to integer conversion as resin defines it on every backend: truncation toward
// zero, saturated at the integer type's range, NaN to 0. A plain static_cast is undefined out of
// range, and CPUs and GPUs then disagree (x86 gives -1.0 -> u8 255 and NaN -> i32 INT_MIN; a GPU
// saturates, and gives 0 for NaN). Shared by the reference backend and the CUDA kernels.
#pragma once
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define RESIN_HOST_DEVICE __host__ __device__
#else
#define RESIN_HOST_DEVICE
#endif

namespace resin {

template <class I, class F>
RESIN_HOST_DEVICE inline I float_to_integer(F v) {
  static_assert(std::is_integral_v<I> && std::is_floating_point_v<F>);
  constexpr int bits = 8 * static_cast<int>(sizeof(I));
  constexpr I hi =
      std::is_signed_v<I> ? static_cast<I>((uint64_t{1} << (bits - 1)) - 1) : static_cast<I>(~I{0});
  constexpr I lo = std::is_signed_v<I> ? static_cast<I>(-hi - 1) : I{0};
  if (!(v == v)) return I{0};
  // F(hi) rounds up to a power of two for 32 and 64 bits: anything from there on saturates.
  if (v >= static_cast<F>(hi)) return hi;
  if (v <= static_cast<F>(lo)) return lo;
  return static_cast<I>(v);
}

}  // namespace resin
