// The CPU backend's own kernels (native_kernels.h).
//
// Training batch norm (forward with batch statistics, backward) for dense f32 activations, as two
// OpenMP passes each: statistics, then the elementwise map; optionally with the ReLU after it fused
// (forward clamps, backward masks the incoming gradient by the output), which saves a pass over
// memory each way and the ReLU's own output tensor.
//
// Why not oneDNN: 2.6's bnorm_jit synchronises its threads with spinning barriers several times per
// call; on these 2-core machines, when another process holds one core, each barrier waits out a
// scheduler slice (16 ms per call measured for 128x16x32x32 under load, 0.6 ms with one thread), and
// its NCHW kernel (ncsp_bnorm) is a slow generic loop. These loops have two fork/joins per call and
// no inner barriers, sum shifted values in double (channels-last: f32 over runs of 32 rows, then
// double), and partition work statically, so results depend only on the thread count (as the
// exact-resume contract requires).
//
// Layouts: channels-last ([R = N·H·W rows] × C, parallel over rows with per-thread partial sums
// combined in thread order), contiguous NCHW (parallel over channels) and packed nChw16c
// (tensor/packing.h: N·C/16 blocks of H·W rows × 16 channels, walked like channels-last rows). Packed
// inputs give packed outputs. Anything else returns false and the caller uses oneDNN or the
// reference loops.
#include "resin/backend/cpu/native_kernels.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "resin/backend/cpu/dnnl_util.h"
#include "resin/tensor/packing.h"

namespace resin::backend::kernels {

namespace {

enum class Layout { none, rows, planes, blocks, flat };
constexpr int64_t kBlock = 16;  // channels per packed block

Layout layout_of(const Tensor& t) {
  if (t.dim() != 4 || t.dtype() != DType::f32) return Layout::none;
  const Strides st = onednn::normalized_strides(t);
  if (st == channels_last_strides(t.shape())) return Layout::rows;
  if (st == contiguous_strides(t.shape())) return Layout::planes;
  return Layout::none;
}

bool vec_ok(const Tensor& t, int64_t c) {
  return !t.defined() || (t.dtype() == DType::f32 && t.dim() == 1 && t.size(0) == c && (t.stride(0) == 1 || c == 1));
}

struct Geometry {
  int64_t n, c, hw;
  int64_t rows() const { return n * hw; }
};

// How a native kernel's operands are laid out: one of batch norm's layouts (rows: channels-last,
// planes: contiguous NCHW, blocks: packed nChw16c) or, for elementwise kernels, flat: any one dense
// order shared by every operand (strides compared as oneDNN sees them, so size-1 dims do not matter).
// How strided operands must agree is the kernel's choice: batch norm needs rows or planes, an
// elementwise kernel only one dense order.
enum class Strided { norm_layout, dense_order };

// The operands of a kernel as raw arrays in one layout. Packed (some input is packed and every operand
// can be; the outputs are written packed and mark_outputs marks them), or all strided (reading a packed
// one unpacks it). Null pointers for undefined tensors; `l` is none when the operands do not agree.
struct Operands {
  Layout l = Layout::none;
  std::vector<const float*> in;
  std::vector<float*> out;
};

// The packed case. A strided input among packed ones is packed here (one pass over it), rather than
// unpacking the others (one pass each, and the outputs, strided, would make the next op unpack or
// pack again).
bool packed_together(std::initializer_list<const Tensor*> in, std::initializer_list<const Tensor*> out,
                     Operands& o) {
  bool any = false;
  for (const Tensor* t : in)
    if (t->defined()) {
      if (packed_data(*t))
        any = true;
      else if (!can_pack(*t))
        return false;
    }
  if (!any) return false;
  for (const Tensor* t : out)
    if (t->defined() && !packing_target(*t)) return false;
  for (const Tensor* t : in)
    if (t->defined() && !packed_data(*t)) pack(*t);
  // Packing one operand unpacks a storage packed for another view of it (two operands viewing one
  // storage with different strides): then they cannot all be packed.
  for (const Tensor* t : in) {
    const float* p = t->defined() ? packed_data(*t) : nullptr;
    if (t->defined() && !p) return false;
    o.in.push_back(p);
  }
  for (const Tensor* t : out) {
    float* p = t->defined() ? packing_target(*t) : nullptr;
    if (t->defined() && !p) return false;
    o.out.push_back(p);
  }
  o.l = Layout::blocks;
  return true;
}

// The strided layout every operand shares, or none.
Layout strided_layout(std::initializer_list<const Tensor*> in, std::initializer_list<const Tensor*> out,
                      Strided mode) {
  const Tensor& first = **in.begin();
  if (mode == Strided::norm_layout) {
    const Layout l = layout_of(first);
    auto same = [&](const Tensor* t) { return !t->defined() || layout_of(*t) == l; };
    const bool all = std::all_of(in.begin(), in.end(), same) && std::all_of(out.begin(), out.end(), same);
    return all ? l : Layout::none;
  }
  const Strides order = onednn::normalized_strides(first);
  auto same = [&](const Tensor* t) {
    return !t->defined() || (t->is_non_overlapping_dense() && onednn::normalized_strides(*t) == order);
  };
  const bool all = std::all_of(in.begin(), in.end(), same) && std::all_of(out.begin(), out.end(), same);
  return all ? Layout::flat : Layout::none;
}

// The first input is defined; every defined operand must be f32 of its shape.
Operands operands(std::initializer_list<const Tensor*> in, std::initializer_list<const Tensor*> out,
                  Strided mode) {
  const Tensor& first = **in.begin();
  auto fits = [&](const Tensor* t) {
    return !t->defined() || (t->dtype() == DType::f32 && t->shape() == first.shape());
  };
  Operands o;
  if (first.numel() == 0 || !std::all_of(in.begin(), in.end(), fits) ||
      !std::all_of(out.begin(), out.end(), fits))
    return o;
  if (packed_together(in, out, o)) return o;
  o = Operands{};
  const Layout l = strided_layout(in, out, mode);
  if (l == Layout::none) return o;
  o.l = l;
  for (const Tensor* t : in) o.in.push_back(t->defined() ? t->data<float>() : nullptr);
  for (const Tensor* t : out) o.out.push_back(t->defined() ? t->data<float>() : nullptr);
  return o;
}

// Marks the outputs of a packed kernel packed; returns true (the kernel ran).
bool mark_outputs(const Operands& o, std::initializer_list<const Tensor*> out) {
  if (o.l == Layout::blocks)
    for (const Tensor* t : out)
      if (t->defined()) mark_packed(*t);
  return true;
}

// Per-channel moments: a[c] = Σ u' and b[c] = Σ u'·(w − k[c]) over the elements of channel c, with
// u' = u − k[c] when kShiftU, else u, and u masked to 0 where keep ≤ 0 when kMasked. Forward: u = w
// = x and k = a local mean of each channel give Σ(x − k), Σ(x − k)², the shifted moments (the mean
// and variance follow without the cancellation of Σx² − (Σx)²/R when |mean| ≫ std); backward: u =
// the (masked) gradient, w = x, k = the batch mean.
//
// Rows (channels-last): with C a multiple of 16, row_run_sums per 16 channels (f32 partial sums
// over short runs of rows, in registers, then double); otherwise per-thread double sums over each
// row's C channels. Planes (NCHW): one double sum per plane was a serial chain of dependent additions
// (a third of the speed of an add, bench/bench_norm); a plane is summed in 16 interleaved double
// partials in explicit vectors instead. GCC vector extensions, lowered to what the target has. The
// order of the additions is fixed by the shape and the thread count alone.
//
// Only inlined helpers of this file pass these vectors, so the psABI note about 32-byte vectors
// without AVX does not concern any interface (ignored to the end of the kernels namespace).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
using v4d = double __attribute__((vector_size(32)));
using v4f = float __attribute__((vector_size(16)));
using v4i = int32_t __attribute__((vector_size(16)));

// u at i, or 0 where keep ≤ 0 (a NaN keep passes u, as PyTorch's threshold_backward does). Bit
// operations: a `? :` became a branch on a random mask, 15x slower, and a multiply by the mask would
// let a NaN gradient through where the ReLU was off.
template <bool kMasked>
inline float masked(const float* u, const float* keep, int64_t i) {
  if constexpr (kMasked) {
    const uint32_t on = 0u - static_cast<uint32_t>(!(keep[i] <= 0.0f));
    return std::bit_cast<float>(std::bit_cast<uint32_t>(u[i]) & on);
  }
  return u[i];
}

template <bool kMasked>
inline v4f load4(const float* u, const float* keep, int64_t i) {
  v4f v;
  std::memcpy(&v, u + i, sizeof v);
  if constexpr (kMasked) {
    v4f k;
    std::memcpy(&k, keep + i, sizeof k);
    v = reinterpret_cast<v4f>(reinterpret_cast<v4i>(v) & ~(k <= 0.0f));
  }
  return v;
}

// Rows [r0, r1) (a short run), the 16 channels from c0 (one 64-byte line per row): adds the sums
// into a[c0..c0+16), b[c0..c0+16). Terms are summed in f32 vectors held in registers, the run's
// partial then added in double: f32 rounding over at most kRowRun terms of shifted (so small)
// values, double across runs. The caller walks all channel blocks of one run before the next, so
// the run is read from memory once (a run of rows is a few KiB: the next block finds it in L1).
constexpr int64_t kRowRun = 32;

template <bool kMasked, bool kShiftU>
void row_run_sums(const float* u, const float* keep, const float* w, const float* k, int64_t C, int64_t c0,
                  int64_t r0, int64_t r1, double* a, double* b) {
  v4f kv[4];
  std::memcpy(kv, k + c0, sizeof kv);
  v4f fa[4] = {}, fb[4] = {};
  for (int64_t r = r0; r < r1; ++r)
    for (int j = 0; j < 4; ++j) {
      const int64_t i = r * C + c0 + 4 * j;
      v4f uv = load4<kMasked>(u, keep, i);
      if constexpr (kShiftU) uv -= kv[j];
      fa[j] += uv;
      fb[j] += uv * (load4<false>(w, nullptr, i) - kv[j]);
    }
  for (int j = 0; j < 4; ++j)
    for (int e = 0; e < 4; ++e) a[c0 + 4 * j + e] += fa[j][e], b[c0 + 4 * j + e] += fb[j][e];
}

template <bool kMasked, bool kShiftU>
void moment_sums(Layout l, const Geometry& g, const float* u, const float* keep, const float* w,
                 const float* k, std::vector<double>& a, std::vector<double>& b) {
  const int64_t C = g.c;
  a.assign(static_cast<size_t>(C), 0.0);
  b.assign(static_cast<size_t>(C), 0.0);
  auto term = [&](int64_t i, int64_t c, double& p, double& q) {
    const double kc = k[c];
    p = masked<kMasked>(u, keep, i);
    if constexpr (kShiftU) p -= kc;
    q = p * (static_cast<double>(w[i]) - kc);
  };
  if (l == Layout::blocks) {
    // One sequence of N·C/16·H·W rows of 16 channels, split evenly over the threads, summed in runs
    // that stay inside one block (a block's rows share their 16 channels).
    const int nt = omp_get_max_threads();
    const int64_t CB = C / kBlock, R = g.n * CB * g.hw;
    std::vector<double> part(static_cast<size_t>(2 * C * nt), 0.0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      double* pa = part.data() + 2 * C * t;
      double* pb = pa + C;
      for (int64_t r0 = R * t / T, hi = R * (t + 1) / T; r0 < hi;) {
        const int64_t blk = r0 / g.hw, first = blk * g.hw, r1 = std::min({hi, r0 + kRowRun, first + g.hw});
        const int64_t base = first * kBlock, c0 = (blk % CB) * kBlock;
        row_run_sums<kMasked, kShiftU>(u + base, kMasked ? keep + base : nullptr, w + base, k + c0, kBlock, 0,
                                       r0 - first, r1 - first, pa + c0, pb + c0);
        r0 = r1;
      }
    }
    for (int t = 0; t < nt; ++t)
      for (int64_t c = 0; c < C; ++c) {
        a[static_cast<size_t>(c)] += part[static_cast<size_t>(2 * C * t + c)];
        b[static_cast<size_t>(c)] += part[static_cast<size_t>(2 * C * t + C + c)];
      }
  } else if (l == Layout::rows) {
    const int nt = omp_get_max_threads();
    std::vector<double> part(static_cast<size_t>(2 * C * nt), 0.0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t R = g.rows(), lo = R * t / T, hi = R * (t + 1) / T;
      double* pa = part.data() + 2 * C * t;
      double* pb = pa + C;
      if (C % 16 == 0) {
        for (int64_t r0 = lo; r0 < hi; r0 += kRowRun)
          for (int64_t c0 = 0; c0 < C; c0 += 16)
            row_run_sums<kMasked, kShiftU>(u, keep, w, k, C, c0, r0, std::min(hi, r0 + kRowRun), pa, pb);
      } else {
        for (int64_t r = lo; r < hi; ++r)
          for (int64_t c = 0; c < C; ++c) {
            double p, q;
            term(r * C + c, c, p, q);
            pa[c] += p;
            pb[c] += q;
          }
      }
    }
    for (int t = 0; t < nt; ++t)
      for (int64_t c = 0; c < C; ++c) {
        a[static_cast<size_t>(c)] += part[static_cast<size_t>(2 * C * t + c)];
        b[static_cast<size_t>(c)] += part[static_cast<size_t>(2 * C * t + C + c)];
      }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      const double kc = k[c];
      const v4d kv = {kc, kc, kc, kc};
      v4d sa[4] = {}, sb[4] = {};
      double ta = 0, tb = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const int64_t base = (n * C + c) * g.hw;
        int64_t i = 0;
        for (; i + 16 <= g.hw; i += 16)
          for (int j = 0; j < 4; ++j) {
            v4d uv = __builtin_convertvector(load4<kMasked>(u, keep, base + i + 4 * j), v4d);
            if constexpr (kShiftU) uv -= kv;
            sa[j] += uv;
            sb[j] += uv * (__builtin_convertvector(load4<false>(w, nullptr, base + i + 4 * j), v4d) - kv);
          }
        for (; i < g.hw; ++i) {
          double p, q;
          term(base + i, c, p, q);
          ta += p;
          tb += q;
        }
      }
      for (int j = 0; j < 4; ++j)
        for (int e = 0; e < 4; ++e) ta += sa[j][e], tb += sb[j][e];
      a[static_cast<size_t>(c)] = ta;
      b[static_cast<size_t>(c)] = tb;
    }
  }
}

#pragma GCC diagnostic pop

// out[i] = f(i, c) over every element, parallel over rows, planes or packed blocks.
template <class Fn>
void channel_map(Layout l, const Geometry& g, Fn&& f) {
  const int64_t C = g.c;
  if (l == Layout::blocks) {
    const int64_t CB = C / kBlock;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < g.n * CB; ++blk) {
      const int64_t c0 = (blk % CB) * kBlock, base = blk * g.hw * kBlock;
      for (int64_t p = 0; p < g.hw; ++p)
        for (int64_t i = 0; i < kBlock; ++i) f(base + p * kBlock + i, c0 + i);
    }
  } else if (l == Layout::rows) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < g.rows(); ++r)
      for (int64_t c = 0; c < C; ++c) f(r * C + c, c);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < g.n * C; ++p) {
      const int64_t c = p % C, base = p * g.hw;
      for (int64_t i = 0; i < g.hw; ++i) f(base + i, c);
    }
  }
}

}  // namespace

bool batch_norm_training(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                         const Tensor& mean, const Tensor& var, double eps, bool relu) {
  if (x.dim() != 4 || !y.defined()) return false;
  const int64_t C = x.size(1);
  if (!mean.defined() || !var.defined() || !vec_ok(mean, C) || !vec_ok(var, C) || !vec_ok(gamma, C) ||
      !vec_ok(beta, C))
    return false;
  const Operands o = operands({&x}, {&y}, Strided::norm_layout);
  const Layout l = o.l;
  if (l == Layout::none) return false;
  const Geometry g{x.size(0), C, x.size(2) * x.size(3)};
  const float* xp = o.in[0];
  // The shift: per channel, the mean (in double) of sample 0's first kShiftSpan positions, the same
  // elements in both layouts. A local mean rather than one element, so that a single outlier cannot
  // put the shift far from the channel's values (the f32 squares' error grows with (k − mean)²/var).
  constexpr int64_t kShiftSpan = 64;
  const int64_t span = std::min(g.hw, kShiftSpan);
  std::vector<float> k(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    double t = 0;
    for (int64_t p = 0; p < span; ++p)
      t += xp[l == Layout::rows     ? p * C + c
              : l == Layout::blocks ? ((c / kBlock) * g.hw + p) * kBlock + c % kBlock
                                    : c * g.hw + p];
    k[static_cast<size_t>(c)] = static_cast<float>(t / static_cast<double>(span));
  }
  std::vector<double> s, q;  // Σ(x − k), Σ(x − k)²
  moment_sums<false, true>(l, g, xp, nullptr, xp, k.data(), s, q);
  const double count = static_cast<double>(g.rows());
  std::vector<float> m(static_cast<size_t>(C)), scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  float* mp = mean.data<float>();
  float* vp = var.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const auto i = static_cast<size_t>(c);
    const double d = s[i] / count, mu = k[i] + d, v = std::max(q[i] / count - d * d, 0.0);
    mp[c] = static_cast<float>(mu);
    vp[c] = static_cast<float>(v);
    const double scale_c = (gamma.defined() ? gamma.data<float>()[c] : 1.0) / std::sqrt(v + eps);
    m[i] = static_cast<float>(mu);
    scale[i] = static_cast<float>(scale_c);
    shift[i] = beta.defined() ? beta.data<float>()[c] : 0.0f;
  }
  float* yp = o.out[0];
  const float *pm = m.data(), *ps = scale.data(), *pt = shift.data();
  // max(v, 0) with v first keeps a NaN (as oneDNN's ReLU and PyTorch do): a diverged channel is not hidden.
  if (relu)
    channel_map(l, g, [&](int64_t i, int64_t c) { yp[i] = std::max((xp[i] - pm[c]) * ps[c] + pt[c], 0.0f); });
  else
    channel_map(l, g, [&](int64_t i, int64_t c) { yp[i] = (xp[i] - pm[c]) * ps[c] + pt[c]; });
  return mark_outputs(o, {&y});
}

bool batch_norm_inference_packed(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                 const Tensor& var, const Tensor& y, double eps) {
  if (x.dim() != 4 || !packed_data(x) || !y.defined()) return false;
  const int64_t C = x.size(1);
  if (!mean.defined() || !var.defined() || !vec_ok(mean, C) || !vec_ok(var, C) || !vec_ok(gamma, C) ||
      !vec_ok(beta, C) || !packing_target(y) || y.shape() != x.shape())
    return false;
  const Operands o = operands({&x}, {&y}, Strided::norm_layout);
  if (o.l != Layout::blocks) return false;
  const Geometry g{x.size(0), C, x.size(2) * x.size(3)};
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    scale[static_cast<size_t>(c)] =
        static_cast<float>((gamma.defined() ? gamma.data<float>()[c] : 1.0) /
                           std::sqrt(static_cast<double>(var.data<float>()[c]) + eps));
    shift[static_cast<size_t>(c)] = beta.defined() ? beta.data<float>()[c] : 0.0f;
  }
  const float *xp = o.in[0], *pm = mean.data<float>();
  float* yp = o.out[0];
  const float *ps = scale.data(), *pt = shift.data();
  // (x − mean)·scale + beta, as the training kernel: no cancellation when |mean| ≫ std.
  channel_map(o.l, g, [&](int64_t i, int64_t c) { yp[i] = (xp[i] - pm[c]) * ps[c] + pt[c]; });
  return mark_outputs(o, {&y});
}

namespace {

// The backward passes; kMasked: the gradient is 0 where relu_y ≤ 0 (a branch-free select, so the
// loops vectorize either way; a NaN relu_y passes the gradient, as PyTorch's threshold_backward).
template <bool kMasked>
void backward_passes(Layout l, const Geometry& g, const float* xp, const float* gp, const float* yp,
                     const float* mp, const float* vp, const Tensor& gamma, float* op, const Tensor& ggamma,
                     const Tensor& gbeta, double eps) {
  const int64_t C = g.c;
  std::vector<double> sg, sgx;  // Σ gy, Σ gy·(x − mean)
  moment_sums<kMasked, false>(l, g, gp, yp, xp, mp, sg, sgx);
  const double count = static_cast<double>(g.rows());
  std::vector<float> ca(static_cast<size_t>(C)), cb(static_cast<size_t>(C)), cd(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const auto i = static_cast<size_t>(c);
    const double rstd = 1.0 / std::sqrt(static_cast<double>(vp[c]) + eps);
    const double k = (gamma.defined() ? gamma.data<float>()[c] : 1.0) * rstd;
    if (ggamma.defined()) ggamma.data<float>()[c] = static_cast<float>(sgx[i] * rstd);
    if (gbeta.defined()) gbeta.data<float>()[c] = static_cast<float>(sg[i]);
    // gx = k·(gy − Σgy/R − (x − mean)·rstd²·Σgy(x − mean)/R)
    ca[i] = static_cast<float>(k);
    cb[i] = static_cast<float>(-k * rstd * rstd * sgx[i] / count);
    cd[i] = static_cast<float>(-k * sg[i] / count);
  }
  if (!op) return;
  const float *pa = ca.data(), *pb = cb.data(), *pd = cd.data();
  channel_map(l, g, [&](int64_t i, int64_t c) {
    op[i] = pa[c] * masked<kMasked>(gp, yp, i) + pb[c] * (xp[i] - mp[c]) + pd[c];
  });
}

}  // namespace

bool batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                         const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                         double eps, const Tensor& relu_y) {
  if (x.dim() != 4 || !gy.defined()) return false;
  const int64_t C = x.size(1);
  if (!vec_ok(mean, C) || !vec_ok(var, C) || !vec_ok(gamma, C) || !vec_ok(ggamma, C) || !vec_ok(gbeta, C) ||
      !mean.defined() || !var.defined())
    return false;
  const Operands o = operands({&x, &gy, &relu_y}, {&gx}, Strided::norm_layout);
  if (o.l == Layout::none) return false;
  const Geometry g{x.size(0), C, x.size(2) * x.size(3)};
  const float *xp = o.in[0], *gp = o.in[1], *mp = mean.data<float>(), *vp = var.data<float>();
  if (relu_y.defined())
    backward_passes<true>(o.l, g, xp, gp, o.in[2], mp, vp, gamma, o.out[0], ggamma, gbeta, eps);
  else
    backward_passes<false>(o.l, g, xp, gp, nullptr, mp, vp, gamma, o.out[0], ggamma, gbeta, eps);
  return mark_outputs(o, {&gx});
}

// Dense tensors with a scalar: oneDNN 2.6's binary has no jit kernel for a permuted source (the
// attention's q·(1/√d) on a [N, H, T, d] view ran on its reference kernel: 345 ms per Transformer
// step). Identical strides mean element i of a and out share a memory offset, so one flat loop.
bool binary_scalar(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (a.dtype() != DType::f32 || b.dtype() != DType::f32 || out.dtype() != DType::f32) return false;
  if (a.shape() != out.shape() || a.strides() != out.strides() || !a.is_non_overlapping_dense()) return false;
  for (int64_t s : b.strides())
    if (s != 0) return false;
  if (op != Binary::add && op != Binary::sub && op != Binary::mul && op != Binary::div) return false;
  const float s = b.data<float>()[0];
  const float* ap = a.data<float>();
  float* op_ = out.data<float>();
  const int64_t n = a.numel();
  switch (op) {
    case Binary::add:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) op_[i] = ap[i] + s;
      break;
    case Binary::sub:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) op_[i] = ap[i] - s;
      break;
    case Binary::mul:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) op_[i] = ap[i] * s;
      break;
    default:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) op_[i] = ap[i] / s;
      break;
  }
  return true;
}

// Sums over leading dims (a bias gradient: [N, T, C] -> [C]): oneDNN 2.6 reduces outer dims with
// its reference kernel (2.6 s of a 3.4 s Transformer step before linear folded its batch dims, and
// still 21 calls per step after). Row blocks per thread, partial sums in double, combined in thread
// order (deterministic for a thread count).
bool reduce_leading(Reduce op, const Tensor& x, const Tensor& out) {
  if ((op != Reduce::sum && op != Reduce::mean) || x.dtype() != DType::f32 || out.dtype() != DType::f32) return false;
  if (x.dim() != out.dim() || x.dim() == 0 || !x.is_contiguous() || !out.is_contiguous() || x.numel() == 0)
    return false;
  int64_t lead = 0;
  while (lead < x.dim() && out.size(lead) == 1) ++lead;
  for (int64_t d = lead; d < x.dim(); ++d)
    if (out.size(d) != x.size(d)) return false;
  const int64_t K = out.numel(), R = x.numel() / K;
  const float* xp = x.data<float>();
  const int nt = omp_get_max_threads();
  std::vector<double> part(static_cast<size_t>(K * nt), 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    double* acc = part.data() + K * t;
    for (int64_t r = R * t / T; r < R * (t + 1) / T; ++r)
      for (int64_t k = 0; k < K; ++k) acc[k] += xp[r * K + k];
  }
  float* o = out.data<float>();
  const double scale = op == Reduce::mean ? 1.0 / static_cast<double>(R) : 1.0;
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int t = 0; t < nt; ++t) s += part[static_cast<size_t>(K * t + k)];
    o[k] = static_cast<float>(s * scale);
  }
  return true;
}

bool binary_packed(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (op != Binary::add && op != Binary::sub && op != Binary::mul) return false;
  if (!packed_data(a) && !packed_data(b)) return false;
  const Operands f = operands({&a, &b}, {&out}, Strided::dense_order);
  if (f.l == Layout::none) return false;
  const float *ap = f.in[0], *bp = f.in[1];
  float* o = f.out[0];
  const int64_t n = out.numel();
  if (op == Binary::add) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = ap[i] + bp[i];
  } else if (op == Binary::sub) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = ap[i] - bp[i];
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = ap[i] * bp[i];
  }
  return mark_outputs(f, {&out});
}

bool relu(const Tensor& x, const Tensor& y) {
  const Operands f = operands({&x}, {&y}, Strided::dense_order);
  if (f.l == Layout::none) return false;
  const float* xp = f.in[0];
  float* yp = f.out[0];
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) yp[i] = std::max(xp[i], 0.0f);
  return mark_outputs(f, {&y});
}

bool add_relu(const Tensor& a, const Tensor& b, const Tensor& y) {
  const Operands f = operands({&a, &b}, {&y}, Strided::dense_order);
  if (f.l == Layout::none) return false;
  const float *ap = f.in[0], *bp = f.in[1];
  float* yp = f.out[0];
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) yp[i] = std::max(ap[i] + bp[i], 0.0f);
  return mark_outputs(f, {&y});
}

bool relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx) {
  const Operands f = operands({&y, &g1, &g2}, {&gx}, Strided::dense_order);
  if (f.l == Layout::none) return false;
  const float *yp = f.in[0], *ap = f.in[1], *bp = f.in[2];
  float* op = f.out[0];
  const int64_t n = gx.numel();
  if (bp) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float g = ap[i] + bp[i];
      op[i] = masked<true>(&g, yp + i, 0);
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) op[i] = masked<true>(ap, yp, i);
  }
  return mark_outputs(f, {&gx});
}

}  // namespace resin::backend::kernels
