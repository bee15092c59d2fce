// Strided iteration over N operands that share one logical shape (broadcast operands carry stride
// 0). The loop collapses contiguous dims and hands the innermost run to the kernel, so a plain
// contiguous case is one call with n == numel. Parallel over outer runs with OpenMP when large.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "resin/core/shape.h"

namespace resin {

template <size_t N>
struct StridedLoop {
  std::vector<int64_t> sizes;                    // collapsed, innermost last
  std::vector<std::array<int64_t, N>> strides;   // per dim, per operand (elements)

  StridedLoop(const Shape& shape, const std::array<const Strides*, N>& st) {
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      std::array<int64_t, N> s{};
      for (size_t k = 0; k < N; ++k) s[k] = (*st[k])[d];
      if (!sizes.empty()) {
        // merge with previous dim when it is exactly the outer extension of this one
        auto& ps = strides.back();
        bool mergeable = true;
        for (size_t k = 0; k < N; ++k) mergeable &= ps[k] == s[k] * shape[d];
        if (mergeable) {
          sizes.back() *= shape[d];
          ps = s;
          continue;
        }
      }
      sizes.push_back(shape[d]);
      strides.push_back(s);
    }
    if (sizes.empty()) {
      sizes.push_back(1);
      strides.push_back({});
    }
  }

  // f(std::array<int64_t,N> offsets, int64_t n, std::array<int64_t,N> inner_strides)
  template <class F>
  void run(F&& f, int64_t grain = 32768) const {
    const int64_t inner = sizes.back();
    const auto inner_st = strides.back();
    int64_t outer = 1;
    for (size_t d = 0; d + 1 < sizes.size(); ++d) outer *= sizes[d];
    const int nd = static_cast<int>(sizes.size()) - 1;
    auto body = [&](int64_t o) {
      std::array<int64_t, N> off{};
      int64_t rem = o;
      for (int d = nd - 1; d >= 0; --d) {
        const int64_t i = rem % sizes[d];
        rem /= sizes[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * strides[d][k];
      }
      f(off, inner, inner_st);
    };
    if (outer * inner >= grain && outer > 1) {
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < outer; ++o) body(o);
    } else {
      for (int64_t o = 0; o < outer; ++o) body(o);
    }
  }
};

}  // namespace resin
