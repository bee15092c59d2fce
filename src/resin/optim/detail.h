// Internal helpers for the optimizer kernels (not part of the public API).
#pragma once
#include <algorithm>
#include <cstdint>

#include "resin/tensor/tensor.h"

namespace resin::optim::detail {

// True when a and b have the same shape and the same dense memory layout, so element k of one
// flat loop over [data, data + numel) is the same logical element in both.
bool same_dense_layout(const Tensor& a, const Tensor& b);

// `src` converted to like's dtype and copied into like's dense layout; `src` itself when it
// already matches (no copy).
Tensor match_layout(const Tensor& src, const Tensor& like);

// A new tensor with like's dtype, shape and dense layout holding a copy of src's values.
Tensor copy_into_layout(const Tensor& src, const Tensor& like);

// Zeros with like's dtype, shape and dense layout (state buffers share the parameter's layout).
Tensor zeros_in_layout(const Tensor& like);

// Runs f(begin, end) over [0, n) in chunks, in parallel when n is large. Chunking never changes
// results: every kernel here is elementwise.
template <class F>
void parallel_chunks(int64_t n, F&& f) {
  constexpr int64_t kGrain = 1 << 15;
  if (n <= kGrain) {
    if (n > 0) f(int64_t{0}, n);
    return;
  }
  const int64_t chunks = (n + kGrain - 1) / kGrain;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(c * kGrain, std::min(n, (c + 1) * kGrain));
}

}  // namespace resin::optim::detail

// Kernels are compiled twice: for x86-64-v3 (AVX2 + FMA, so std::fma is one instruction and the loop
// vectorises) and for the baseline (std::fma is a correctly rounded libm call). Both give identical
// results because fma is exactly rounded either way; GCC picks one at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RESIN_OPTIM_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RESIN_OPTIM_KERNEL
#endif
