// Helpers for the CUDA tests (built only with RESIN_WITH_CUDA; every test skips when the machine
// has no GPU). Kernel parity reuses tests/backend's tolerance and layouts: CUDA results are
// compared with the reference backend's on the same inputs.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "../backend/parity_util.h"
#include "resin/backend/cuda/cuda_backend.h"
#include "resin/backend/cuda/kernels.h"
#include "resin/core/cuda.h"

#define RESIN_REQUIRE_GPU()                                                            \
  do {                                                                                 \
    if (!::resin::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

// The emulated GPU (test_gpu_emulated) runs the same code on the CPU with cuDNN and cuBLAS as plain
// loops: a test that trains for hundreds of steps would take hours there.
#define RESIN_SKIP_ON_EMULATED_GPU(why)                                                             \
  do {                                                                                              \
    if (::resin::backend::cuda::emulated_gpu()) GTEST_SKIP() << "not on the emulated GPU: " << why; \
  } while (0)

namespace resin::test {

inline Backend& gpu() { return backend::cuda_backend(); }
inline Device gpu_device() { return Device::cuda(0); }

// t's values in a new GPU tensor of the given physical layout (uploaded through the backend's
// copy). strided: a view into a larger GPU buffer (last dim padded by 3), so no dim is dense.
inline Tensor on_gpu(const Tensor& t, Layout l = Layout::nchw) {
  const TensorOptions o{.dtype = t.dtype(), .device = gpu_device()};
  Tensor out;
  if (l == Layout::channels_last && t.dim() == 4) {
    out = empty_strided(t.shape(), channels_last_strides(t.shape()), o);
  } else if (l == Layout::strided && t.dim() > 0) {
    Shape big = t.shape();
    big[big.size() - 1] += 3;
    out = empty(big, o).narrow(t.dim() - 1, 1, t.size(-1));
  } else {
    out = empty(t.shape(), o);
  }
  gpu().copy(t, out);
  return out;
}

// An output buffer on the GPU in layout l, filled with NaN (a skipped element shows).
inline Tensor gpu_out(const Shape& s, Layout l, DType dt = DType::f32) {
  Tensor t = on_gpu(zeros(s, {.dtype = dt}), l);
  gpu().fill(t, std::nan(""));
  return t;
}

inline Tensor rnd_as(const Shape& s, DType dt) { return dt == DType::f32 ? rnd(s) : rnd(s).to(dt); }

// Tolerances: f32 as tests/backend (parity_util.h); f64 near its rounding.
inline void expect_near_ref(const Tensor& got, const Tensor& want, const std::string& what) {
  if (want.dtype() == DType::f64) expect_close(got, want, what + " (f64)", 1e-9, 1e-11);
  else expect_close(got, want, what);
}

inline const char* dtype_label(DType t) { return t == DType::f64 ? "f64" : "f32"; }

}  // namespace resin::test
