// Reference matmul, convolution, normalisation, pooling, softmax and concat: direct loops that
// follow the definitions (accumulating in double), so they can judge the fast kernels.
#include <cmath>
#include <limits>

#include "resin/backend/ref/ref_backend.h"

namespace resin::backend {

// Below this many multiply-adds a loop runs serially: forking a team costs more than it saves on
// the tiny tensors of gradient checks (and much more on a loaded machine).
constexpr int64_t kParallelWork = 1 << 15;

void RefBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
    const T *ap = a.data<T>(), *bp = b.data<T>();
    T* op = out.data<T>();
    // Strides hoisted out of the loops (Tensor::stride is an out-of-line call); same summation order.
    const int64_t as0 = a.stride(0), as1 = a.stride(1), as2 = a.stride(2);
    const int64_t bs0 = b.stride(0), bs1 = b.stride(1), bs2 = b.stride(2);
    const int64_t os0 = out.stride(0), os1 = out.stride(1), os2 = out.stride(2);
#pragma omp parallel for collapse(2) schedule(static) if (B * M * N * K >= kParallelWork)
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<double>(ap[bi * as0 + m * as1 + k * as2]) * bp[bi * bs0 + k * bs1 + n * bs2];
          op[bi * os0 + m * os1 + n * os2] = static_cast<T>(acc);
        }
  });
}

void RefBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                                const Conv2dParams& p) {
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = y.size(0), O = y.size(1), OH = y.size(2), OW = y.size(3);
    const int64_t H = x.size(2), W = x.size(3), KH = w.size(2), KW = w.size(3);
    const int64_t cig = w.size(1), cog = O / p.groups;
#pragma omp parallel for collapse(2) schedule(static) if (N * O * OH * OW * cig * KH * KW >= kParallelWork)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) {
        const int64_t g = o / cog;
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            double acc = bias.defined() ? static_cast<double>(bias.data<T>()[o * bias.stride(0)]) : 0.0;
            for (int64_t c = 0; c < cig; ++c)
              for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
                if (ih < 0 || ih >= H) continue;
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dilation_w;
                  if (iw < 0 || iw >= W) continue;
                  acc += static_cast<double>(at4<T>(x, n, g * cig + c, ih, iw)) * at4<T>(w, o, c, kh, kw);
                }
              }
            at4<T>(y, n, o, oh, ow) = static_cast<T>(acc);
          }
      }
  });
}

void RefBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                      const Conv2dParams& p) {
  dispatch_float(gy.dtype(), "conv2d_backward_data", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = gx.size(0), C = gx.size(1), H = gx.size(2), W = gx.size(3);
    const int64_t O = gy.size(1), OH = gy.size(2), OW = gy.size(3), KH = w.size(2), KW = w.size(3);
    const int64_t cig = w.size(1), cog = O / p.groups;
#pragma omp parallel for collapse(2) schedule(static) if (N * C * H * W * cog * KH * KW >= kParallelWork)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t g = c / cig, cl = c % cig;
        for (int64_t ih = 0; ih < H; ++ih)
          for (int64_t iw = 0; iw < W; ++iw) {
            double acc = 0;
            for (int64_t ol = 0; ol < cog; ++ol) {
              const int64_t o = g * cog + ol;
              for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t th = ih + p.pad_h - kh * p.dilation_h;
                if (th < 0 || th % p.stride_h) continue;
                const int64_t oh = th / p.stride_h;
                if (oh >= OH) continue;
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t tw = iw + p.pad_w - kw * p.dilation_w;
                  if (tw < 0 || tw % p.stride_w) continue;
                  const int64_t ow = tw / p.stride_w;
                  if (ow >= OW) continue;
                  acc += static_cast<double>(at4<T>(gy, n, o, oh, ow)) * at4<T>(w, o, cl, kh, kw);
                }
              }
            }
            at4<T>(gx, n, c, ih, iw) = static_cast<T>(acc);
          }
      }
  });
}

void RefBackend::conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                         const Tensor& gb, const Conv2dParams& p) {
  dispatch_float(x.dtype(), "conv2d_backward_weights", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = gy.size(0), O = gy.size(1), OH = gy.size(2), OW = gy.size(3);
    const int64_t H = x.size(2), W = x.size(3), KH = gw.size(2), KW = gw.size(3);
    const int64_t cig = gw.size(1), cog = O / p.groups;
#pragma omp parallel for collapse(2) schedule(static) if (N * O * OH * OW * cig * KH * KW >= kParallelWork)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t c = 0; c < cig; ++c) {
        const int64_t g = o / cog;
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw) {
            double acc = 0;
            for (int64_t n = 0; n < N; ++n)
              for (int64_t oh = 0; oh < OH; ++oh) {
                const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
                if (ih < 0 || ih >= H) continue;
                for (int64_t ow = 0; ow < OW; ++ow) {
                  const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dilation_w;
                  if (iw < 0 || iw >= W) continue;
                  acc += static_cast<double>(at4<T>(gy, n, o, oh, ow)) * at4<T>(x, n, g * cig + c, ih, iw);
                }
              }
            at4<T>(gw, o, c, kh, kw) = static_cast<T>(acc);
          }
      }
    if (gb.defined()) {
      for (int64_t o = 0; o < O; ++o) {
        double acc = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) acc += at4<T>(gy, n, o, oh, ow);
        gb.data<T>()[o * gb.stride(0)] = static_cast<T>(acc);
      }
    }
  });
}

namespace {
// Per-channel sums over (N, H, W) of a 4-D tensor.
template <class T, class F>
double channel_sum(const Tensor& t, int64_t c, F&& f) {
  double acc = 0;
  for (int64_t n = 0; n < t.size(0); ++n)
    for (int64_t h = 0; h < t.size(2); ++h)
      for (int64_t w = 0; w < t.size(3); ++w) acc += f(n, h, w);
  (void)c;
  return acc;
}
template <class T>
T vec(const Tensor& t, int64_t i, T fallback) {
  return t.defined() ? t.data<T>()[i * t.stride(0)] : fallback;
}
}  // namespace

void RefBackend::batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                             const Tensor& y, const Tensor& mean, const Tensor& var,
                                             double eps) {
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t C = x.size(1);
    const double count = static_cast<double>(x.numel() / C);
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
      const double m = channel_sum<T>(x, c, [&](int64_t n, int64_t h, int64_t w) { return double(at4<T>(x, n, c, h, w)); }) / count;
      const double v = channel_sum<T>(x, c, [&](int64_t n, int64_t h, int64_t w) {
                         const double d = at4<T>(x, n, c, h, w) - m;
                         return d * d;
                       }) / count;
      mean.data<T>()[c * mean.stride(0)] = static_cast<T>(m);
      var.data<T>()[c * var.stride(0)] = static_cast<T>(v);
      const double inv = 1.0 / std::sqrt(v + eps);
      const double g = vec<T>(gamma, c, T(1)), b = vec<T>(beta, c, T(0));
      for (int64_t n = 0; n < x.size(0); ++n)
        for (int64_t h = 0; h < x.size(2); ++h)
          for (int64_t w = 0; w < x.size(3); ++w)
            at4<T>(y, n, c, h, w) = static_cast<T>((at4<T>(x, n, c, h, w) - m) * inv * g + b);
    }
  });
}

void RefBackend::batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                              const Tensor& mean, const Tensor& var, const Tensor& y,
                                              double eps) {
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t C = x.size(1);
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
      const double m = vec<T>(mean, c, T(0)), inv = 1.0 / std::sqrt(double(vec<T>(var, c, T(1))) + eps);
      const double g = vec<T>(gamma, c, T(1)), b = vec<T>(beta, c, T(0));
      for (int64_t n = 0; n < x.size(0); ++n)
        for (int64_t h = 0; h < x.size(2); ++h)
          for (int64_t w = 0; w < x.size(3); ++w)
            at4<T>(y, n, c, h, w) = static_cast<T>((at4<T>(x, n, c, h, w) - m) * inv * g + b);
    }
  });
}

void RefBackend::batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean,
                                     const Tensor& var, const Tensor& gamma, const Tensor& gx,
                                     const Tensor& ggamma, const Tensor& gbeta, double eps) {
  dispatch_float(x.dtype(), "batch_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t C = x.size(1);
    const double count = static_cast<double>(x.numel() / C);
#pragma omp parallel for schedule(static) if (x.numel() >= kParallelWork)
    for (int64_t c = 0; c < C; ++c) {
      const double m = vec<T>(mean, c, T(0)), inv = 1.0 / std::sqrt(double(vec<T>(var, c, T(1))) + eps);
      const double g = vec<T>(gamma, c, T(1));
      // dbeta = sum gy; dgamma = sum gy * xhat; dx = g*inv/count * (count*gy - dbeta - xhat*dgamma)
      const double sum_gy = channel_sum<T>(x, c, [&](int64_t n, int64_t h, int64_t w) { return double(at4<T>(gy, n, c, h, w)); });
      const double sum_gy_xhat = channel_sum<T>(x, c, [&](int64_t n, int64_t h, int64_t w) {
        return double(at4<T>(gy, n, c, h, w)) * (at4<T>(x, n, c, h, w) - m) * inv;
      });
      if (ggamma.defined()) ggamma.data<T>()[c * ggamma.stride(0)] = static_cast<T>(sum_gy_xhat);
      if (gbeta.defined()) gbeta.data<T>()[c * gbeta.stride(0)] = static_cast<T>(sum_gy);
      if (!gx.defined()) continue;
      for (int64_t n = 0; n < x.size(0); ++n)
        for (int64_t h = 0; h < x.size(2); ++h)
          for (int64_t w = 0; w < x.size(3); ++w) {
            const double xhat = (at4<T>(x, n, c, h, w) - m) * inv;
            at4<T>(gx, n, c, h, w) = static_cast<T>(
                g * inv / count * (count * at4<T>(gy, n, c, h, w) - sum_gy - xhat * sum_gy_xhat));
          }
    }
  });
}

void RefBackend::layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& y, const Tensor& mean, const Tensor& rstd, double eps) {
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const int64_t M = x.size(0), N = x.size(1);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
#pragma omp parallel for schedule(static) if (M * N >= kParallelWork)
    for (int64_t i = 0; i < M; ++i) {
      double m = 0, v = 0;
      for (int64_t j = 0; j < N; ++j) m += xp[i * N + j];
      m /= static_cast<double>(N);
      for (int64_t j = 0; j < N; ++j) v += (xp[i * N + j] - m) * (xp[i * N + j] - m);
      v /= static_cast<double>(N);
      const double r = 1.0 / std::sqrt(v + eps);
      mean.data<T>()[i] = static_cast<T>(m);
      rstd.data<T>()[i] = static_cast<T>(r);
      for (int64_t j = 0; j < N; ++j)
        yp[i * N + j] = static_cast<T>((xp[i * N + j] - m) * r * double(vec<T>(gamma, j, T(1))) + double(vec<T>(beta, j, T(0))));
    }
  });
}

void RefBackend::layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& gamma, const Tensor& gx,
                                     const Tensor& ggamma, const Tensor& gbeta) {
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t M = x.size(0), N = x.size(1);
    const T *xp = x.data<T>(), *gyp = gy.data<T>();
    std::vector<double> gg(static_cast<size_t>(N), 0.0), gb(static_cast<size_t>(N), 0.0);
    for (int64_t i = 0; i < M; ++i) {
      const double m = mean.data<T>()[i], r = rstd.data<T>()[i];
      double s1 = 0, s2 = 0;  // sum(g*gamma), sum(g*gamma*xhat)
      for (int64_t j = 0; j < N; ++j) {
        const double xhat = (xp[i * N + j] - m) * r, g = gyp[i * N + j];
        gg[j] += g * xhat;
        gb[j] += g;
        const double gh = g * double(vec<T>(gamma, j, T(1)));
        s1 += gh;
        s2 += gh * xhat;
      }
      if (gx.defined())
        for (int64_t j = 0; j < N; ++j) {
          const double xhat = (xp[i * N + j] - m) * r;
          const double gh = gyp[i * N + j] * double(vec<T>(gamma, j, T(1)));
          gx.data<T>()[i * N + j] = static_cast<T>(r / N * (N * gh - s1 - xhat * s2));
        }
    }
    for (int64_t j = 0; j < N; ++j) {
      if (ggamma.defined()) ggamma.data<T>()[j] = static_cast<T>(gg[j]);
      if (gbeta.defined()) gbeta.data<T>()[j] = static_cast<T>(gb[j]);
    }
  });
}

Tensor RefBackend::pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  Tensor ws = kind == Pool::max ? empty(y.shape(), {.dtype = DType::i64}) : Tensor();
  dispatch_float(x.dtype(), "pool2d", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = y.size(0), C = y.size(1), OH = y.size(2), OW = y.size(3), H = x.size(2), W = x.size(3);
#pragma omp parallel for collapse(2) schedule(static) \
    if (N * C * OH * OW * p.kernel_h * p.kernel_w >= kParallelWork)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
            double best = -std::numeric_limits<double>::infinity(), sum = 0;
            int64_t arg = -1, count = 0;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh)
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t ih = h0 + kh, iw = w0 + kw;
                if (ih < -p.pad_h || ih >= H + p.pad_h || iw < -p.pad_w || iw >= W + p.pad_w) continue;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                  if (p.count_include_pad) ++count;
                  continue;
                }
                const double v = at4<T>(x, n, c, ih, iw);
                ++count;
                sum += v;
                if (v > best || arg < 0) {
                  best = v;
                  arg = ih * W + iw;
                }
              }
            if (kind == Pool::max) {
              at4<T>(y, n, c, oh, ow) = static_cast<T>(best);
              ws.data<int64_t>()[((n * C + c) * OH + oh) * OW + ow] = arg;
            } else {
              at4<T>(y, n, c, oh, ow) = static_cast<T>(count ? sum / static_cast<double>(count) : 0.0);
            }
          }
  });
  return ws;
}

void RefBackend::pool2d_backward(Pool kind, const Tensor& gy, const Tensor& ws, const Tensor& gx,
                                 const Pool2dParams& p) {
  fill(gx, 0.0);
  dispatch_float(gy.dtype(), "pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t N = gy.size(0), C = gy.size(1), OH = gy.size(2), OW = gy.size(3), H = gx.size(2), W = gx.size(3);
#pragma omp parallel for collapse(2) schedule(static) \
    if (N * C * OH * OW * p.kernel_h * p.kernel_w >= kParallelWork)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const double g = at4<T>(gy, n, c, oh, ow);
            if (kind == Pool::max) {
              const int64_t arg = ws.data<int64_t>()[((n * C + c) * OH + oh) * OW + ow];
              at4<T>(gx, n, c, arg / W, arg % W) += static_cast<T>(g);
              continue;
            }
            const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
            int64_t count = 0;
            for (int64_t kh = 0; kh < p.kernel_h; ++kh)
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t ih = h0 + kh, iw = w0 + kw;
                if (ih < -p.pad_h || ih >= H + p.pad_h || iw < -p.pad_w || iw >= W + p.pad_w) continue;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) ++count;
                else if (p.count_include_pad) ++count;
              }
            for (int64_t kh = 0; kh < p.kernel_h; ++kh)
              for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
                const int64_t ih = h0 + kh, iw = w0 + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                at4<T>(gx, n, c, ih, iw) += static_cast<T>(g / static_cast<double>(count));
              }
          }
  });
}

namespace {
// Calls f(base_offset, stride, length) for every 1-D lane along `dim` of a tensor.
template <class F>
void for_each_lane(const Tensor& t, int64_t dim, F&& f) {
  const Shape& s = t.shape();
  const int64_t len = s[dim];
  const int64_t lanes = t.numel() / std::max<int64_t>(len, 1);
#pragma omp parallel for schedule(static) if (t.numel() >= kParallelWork)
  for (int64_t l = 0; l < lanes; ++l) {
    int64_t rem = l, base = 0;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
      if (d == dim) continue;
      base += (rem % s[d]) * t.strides()[d];
      rem /= s[d];
    }
    f(base, l);
  }
  (void)len;
}
}  // namespace

void RefBackend::softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) {
  RESIN_CHECK(x.strides() == y.strides(), "softmax: x and y must share a layout");
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    const int64_t len = x.size(dim), st = x.stride(dim);
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    for_each_lane(x, dim, [&](int64_t base, int64_t) {
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < len; ++i) mx = std::max(mx, double(xp[base + i * st]));
      for (int64_t i = 0; i < len; ++i) sum += std::exp(xp[base + i * st] - mx);
      for (int64_t i = 0; i < len; ++i) {
        const double z = xp[base + i * st] - mx;
        yp[base + i * st] = static_cast<T>(log ? z - std::log(sum) : std::exp(z) / sum);
      }
    });
  });
}

void RefBackend::softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim, bool log) {
  RESIN_CHECK(y.strides() == gy.strides() && y.strides() == gx.strides(), "softmax_backward: layouts differ");
  dispatch_float(y.dtype(), "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t len = y.size(dim), st = y.stride(dim);
    const T *yp = y.data<T>(), *gyp = gy.data<T>();
    T* gxp = gx.data<T>();
    for_each_lane(y, dim, [&](int64_t base, int64_t) {
      double dot = 0;
      for (int64_t i = 0; i < len; ++i)
        dot += log ? double(gyp[base + i * st]) : double(gyp[base + i * st]) * yp[base + i * st];
      for (int64_t i = 0; i < len; ++i) {
        const int64_t k = base + i * st;
        gxp[k] = static_cast<T>(log ? gyp[k] - std::exp(double(yp[k])) * dot : yp[k] * (gyp[k] - dot));
      }
    });
  });
}

void RefBackend::concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) {
  int64_t start = 0;
  for (const Tensor& x : xs) {
    const int64_t len = x.size(dim);
    Strides st = out.strides();
    auto view = std::make_shared<TensorImpl>(out.impl()->storage(), x.shape(), st,
                                             out.offset() + start * out.stride(dim), out.dtype());
    copy(x, Tensor(view));
    start += len;
  }
}

}  // namespace resin::backend
