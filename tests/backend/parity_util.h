// Helpers for the oneDNN-vs-reference kernel parity tests.
//
// Tolerance: the reference accumulates in double and rounds once; oneDNN accumulates in f32 in
// some blocked order. An element passes when |cpu - ref| <= 1e-4 * |ref| + 1e-5 * max|ref|: 1e-4
// relative where values are O(max), and an absolute floor of 1e-5 of the tensor's scale for
// elements that are sums with cancellation (their f32 error is set by the size of the terms, not
// of the result). Kernel inputs are O(1) random normals, so the floors are ~1e-5..1e-4 absolute.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "resin/backend/backend.h"
#include "resin/backend/cpu/cpu_backend.h"
#include "resin/resin.h"

namespace resin::test {

using backend::Backend;

inline Backend& cpu() {
  Backend& b = backend::backend_for(empty(Shape{1}));
  EXPECT_STREQ(b.name(), "cpu");
  return b;
}
inline Backend& ref() { return backend::ref_backend(); }

enum class Layout { nchw, channels_last, strided };
inline const char* layout_name(Layout l) {
  return l == Layout::nchw ? "nchw" : l == Layout::channels_last ? "channels_last" : "strided";
}

inline Generator& gen() {
  static Generator g(1234);
  return g;
}

inline Tensor rnd(const Shape& s) { return randn(s, {}, &gen()); }

// `t`'s values in a fresh tensor of the given physical layout. strided: a view into a larger
// buffer (last dim padded by 3 elements), so no dim is dense.
inline Tensor in_layout(const Tensor& t, Layout l) {
  Tensor out;
  if (l == Layout::channels_last && t.dim() == 4) {
    out = empty_strided(t.shape(), channels_last_strides(t.shape()));
  } else if (l == Layout::strided && t.dim() > 0) {
    Shape big = t.shape();
    big[big.size() - 1] += 3;
    out = empty(big).narrow(t.dim() - 1, 1, t.size(-1));
  } else {
    out = empty(t.shape());
  }
  ref().copy(t, out);
  return out;
}

// An uninitialised tensor of shape s in layout l (strided outputs are plain views too).
inline Tensor out_like(const Shape& s, Layout l) {
  Tensor t = in_layout(zeros(s), l);
  ref().fill(t, std::nan(""));  // a kernel that skips an element leaves a NaN behind
  return t;
}

// Compares logically (any layouts). Returns the worst |diff| / allowed ratio for the message.
inline void expect_close(const Tensor& got, const Tensor& want, const std::string& what, double rtol = 1e-4,
                         double scale_tol = 1e-5) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  double scale = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double allowed = rtol * std::abs(w[i]) + scale_tol * scale;
    const double d = std::abs(g[i] - w[i]);
    if (!(d <= allowed) && !(std::isinf(w[i]) && g[i] == w[i])) {
      if (bad++ == 0) first = i;
    }
    if (allowed > 0) worst = std::max(worst, d / allowed);
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << g.size() << " elements off; first at " << first
                     << ": got " << (g.empty() ? 0 : g[first]) << ", want " << (w.empty() ? 0 : w[first])
                     << " (scale " << scale << ", worst ratio " << worst << ")";
}

// A convolution geometry: input [n, c, h, w], weight [o, c/groups, kh, kw].
struct ConvCase {
  const char* name;
  int64_t n, c, h, w, o, kh, kw;
  backend::Conv2dParams p;
};

inline Shape conv_out(const ConvCase& c) {
  const auto& p = c.p;
  return {c.n, c.o, (c.h + 2 * p.pad_h - p.dilation_h * (c.kh - 1) - 1) / p.stride_h + 1,
          (c.w + 2 * p.pad_w - p.dilation_w * (c.kw - 1) - 1) / p.stride_w + 1};
}

// Runs f() and checks that the CPU backend's fast path ran it (a oneDNN primitive or one of its own
// kernels executed, no configuration rejected) or, with expect_dnnl = false, that it went to the
// reference loops.
template <class F>
void expect_path(bool expect_dnnl, const std::string& what, F&& f) {
  const auto before = backend::CpuBackend::cache_stats();
  f();
  const auto after = backend::CpuBackend::cache_stats();
  if (expect_dnnl) {
    EXPECT_GT(after.executed + after.native, before.executed + before.native)
        << what << ": expected a oneDNN primitive or a native kernel to run";
    EXPECT_EQ(after.rejected, before.rejected) << what << ": oneDNN rejected the configuration";
  } else {
    EXPECT_EQ(after.executed + after.native, before.executed + before.native)
        << what << ": expected the reference fallback";
  }
}

// Runs f() and checks that exactly one of the CPU backend's own kernels ran and no oneDNN primitive.
template <class F>
void expect_native(const std::string& what, F&& f) {
  const auto before = backend::CpuBackend::cache_stats();
  f();
  const auto after = backend::CpuBackend::cache_stats();
  EXPECT_EQ(after.native, before.native + 1) << what << ": expected one native kernel";
  EXPECT_EQ(after.executed, before.executed) << what << ": a oneDNN primitive ran";
}

}  // namespace resin::test
