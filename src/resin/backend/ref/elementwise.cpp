// Reference elementwise, reduction, copy and index kernels.
#include <cmath>

#include "resin/backend/ref/ref_backend.h"
#include "resin/core/convert.h"
#include "resin/tensor/iter.h"

namespace resin::backend {
namespace {

template <class T>
T unary_value(Unary op, T x, UnaryParams p) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return std::exp(x);
    case Unary::log: return std::log(x);
    case Unary::sqrt: return std::sqrt(x);
    case Unary::rsqrt: return T(1) / std::sqrt(x);
    case Unary::abs: return std::abs(x);
    case Unary::relu: return x > T(0) || x != x ? x : T(0);  // NaN passes, as in oneDNN and PyTorch
    case Unary::leaky_relu: return x > T(0) ? x : static_cast<T>(p.alpha) * x;
    case Unary::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(M_SQRT1_2)));
    case Unary::gelu_tanh: {
      const T k = T(0.7978845608028654);  // sqrt(2/pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
    case Unary::sigmoid: return T(1) / (T(1) + std::exp(-x));
    case Unary::tanh: return std::tanh(x);
    case Unary::softplus: {  // (1/beta) log(1 + exp(beta x)), linear above the threshold
      const T bx = static_cast<T>(p.alpha) * x;
      return bx > static_cast<T>(p.beta) ? x : std::log1p(std::exp(bx)) / static_cast<T>(p.alpha);
    }
    case Unary::pow: return std::pow(x, static_cast<T>(p.alpha));
    case Unary::clamp: return std::min(std::max(x, static_cast<T>(p.alpha)), static_cast<T>(p.beta));
  }
  return x;
}

// d op / dx given x and y = op(x).
template <class T>
T unary_derivative(Unary op, T x, T y, UnaryParams p) {
  switch (op) {
    case Unary::neg: return T(-1);
    case Unary::exp: return y;
    case Unary::log: return T(1) / x;
    case Unary::sqrt: return T(0.5) / y;
    case Unary::rsqrt: return T(-0.5) * y * y * y;
    case Unary::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case Unary::relu: return x > T(0) ? T(1) : T(0);
    case Unary::leaky_relu: return x > T(0) ? T(1) : static_cast<T>(p.alpha);
    case Unary::gelu: {
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
      const T pdf = std::exp(T(-0.5) * x * x) * T(0.3989422804014327);  // 1/sqrt(2 pi)
      return cdf + x * pdf;
    }
    case Unary::gelu_tanh: {
      const T k = T(0.7978845608028654);
      const T inner = k * (x + T(0.044715) * x * x * x);
      const T t = std::tanh(inner);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3 * 0.044715) * x * x);
    }
    case Unary::sigmoid: return y * (T(1) - y);
    case Unary::tanh: return T(1) - y * y;
    case Unary::softplus: {
      const T bx = static_cast<T>(p.alpha) * x;
      return bx > static_cast<T>(p.beta) ? T(1) : T(1) / (T(1) + std::exp(-bx));
    }
    case Unary::pow:  // x^0 is constant: 0, not 0 * x^-1 (NaN at x = 0), as torch
      return p.alpha == 0 ? T(0) : static_cast<T>(p.alpha) * std::pow(x, static_cast<T>(p.alpha - 1));
    case Unary::clamp: return (x >= static_cast<T>(p.alpha) && x <= static_cast<T>(p.beta)) ? T(1) : T(0);
  }
  return T(0);
}

template <class T>
T binary_value(Binary op, T a, T b) {
  switch (op) {
    case Binary::add: return a + b;
    case Binary::sub: return a - b;
    case Binary::mul: return a * b;
    case Binary::div: return a / b;
    case Binary::eq: return a == b ? T(1) : T(0);
    case Binary::gt: return a > b ? T(1) : T(0);
    case Binary::lt: return a < b ? T(1) : T(0);
  }
  return a;
}

template <class D, class S>
inline D convert(S v) {
  if constexpr (is_half_float_v<S>) {
    return convert<D>(static_cast<float>(v));
  } else if constexpr (is_half_float_v<D>) {
    return D(static_cast<float>(v));
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    return float_to_integer<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

}  // namespace

void RefBackend::unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) {
  dispatch_float(x.dtype(), "unary", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.data<T>();
    T* op_ = out.data<T>();
    StridedLoop<2> loop(x.shape(), {&x.strides(), &out.strides()});
    loop.run([&](std::array<int64_t, 2> o, int64_t n, std::array<int64_t, 2> s) {
      for (int64_t i = 0; i < n; ++i) op_[o[1] + i * s[1]] = unary_value<T>(op, xp[o[0] + i * s[0]], p);
    });
  });
}

void RefBackend::unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy,
                                const Tensor& gx, UnaryParams p) {
  dispatch_float(x.dtype(), "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    const T *xp = x.data<T>(), *yp = y.data<T>(), *gyp = gy.data<T>();
    T* gxp = gx.data<T>();
    StridedLoop<4> loop(x.shape(), {&x.strides(), &y.strides(), &gy.strides(), &gx.strides()});
    loop.run([&](std::array<int64_t, 4> o, int64_t n, std::array<int64_t, 4> s) {
      // ReLU selects instead of multiplying, as PyTorch's threshold_backward: 0 where x ≤ 0 even if
      // gy is NaN (gy · 0 would pass the NaN on), gy elsewhere (also where x is NaN).
      if (op == Unary::relu)
        for (int64_t i = 0; i < n; ++i)
          gxp[o[3] + i * s[3]] = xp[o[0] + i * s[0]] <= T(0) ? T(0) : gyp[o[2] + i * s[2]];
      else
        for (int64_t i = 0; i < n; ++i)
          gxp[o[3] + i * s[3]] =
              gyp[o[2] + i * s[2]] * unary_derivative<T>(op, xp[o[0] + i * s[0]], yp[o[1] + i * s[1]], p);
    });
  });
}

void RefBackend::binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using T = decltype(tag);
    const T *ap = a.data<T>(), *bp = b.data<T>();
    T* outp = out.data<T>();
    StridedLoop<3> loop(out.shape(), {&a.strides(), &b.strides(), &out.strides()});
    loop.run([&](std::array<int64_t, 3> o, int64_t n, std::array<int64_t, 3> s) {
      for (int64_t i = 0; i < n; ++i)
        outp[o[2] + i * s[2]] = binary_value<T>(op, ap[o[0] + i * s[0]], bp[o[1] + i * s[1]]);
    });
  });
}

void RefBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  Tensor c = cond.dtype() == out.dtype() ? cond : cond.to(out.dtype());
  dispatch_float(out.dtype(), "where", [&](auto tag) {
    using T = decltype(tag);
    const T *cp = c.data<T>(), *ap = a.data<T>(), *bp = b.data<T>();
    T* outp = out.data<T>();
    StridedLoop<4> loop(out.shape(), {&c.strides(), &a.strides(), &b.strides(), &out.strides()});
    loop.run([&](std::array<int64_t, 4> o, int64_t n, std::array<int64_t, 4> s) {
      for (int64_t i = 0; i < n; ++i)
        outp[o[3] + i * s[3]] = cp[o[0] + i * s[0]] != T(0) ? ap[o[1] + i * s[1]] : bp[o[2] + i * s[2]];
    });
  });
}

void RefBackend::reduce(Reduce op, const Tensor& x, const Tensor& out) {
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    // Reduce into a double accumulator per output element, visiting x in logical order.
    const int64_t nout = out.numel();
    std::vector<double> acc(static_cast<size_t>(nout),
                            op == Reduce::max ? -INFINITY : (op == Reduce::min ? INFINITY : 0.0));
    // out element index for each x element: broadcast out's dense strides with 0 on reduced dims.
    Strides ostr = contiguous_strides(out.shape());
    for (size_t d = 0; d < ostr.size(); ++d)
      if (out.shape()[d] == 1 && x.shape()[d] != 1) ostr[d] = 0;
    const T* xp = x.data<T>();
    StridedLoop<2> loop(x.shape(), {&x.strides(), &ostr});
    loop.run(
        [&](std::array<int64_t, 2> o, int64_t n, std::array<int64_t, 2> s) {
          for (int64_t i = 0; i < n; ++i) {
            const double v = xp[o[0] + i * s[0]];
            double& a = acc[static_cast<size_t>(o[1] + i * s[1])];
            if (op == Reduce::max) a = (v > a || std::isnan(v)) ? v : a;
            else if (op == Reduce::min) a = (v < a || std::isnan(v)) ? v : a;
            else a += v;
          }
        },
        INT64_MAX);  // serial: outputs are shared between runs
    const double count = static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(nout, 1));
    Tensor dense = empty(out.shape(), {.dtype = out.dtype()});
    T* dp = dense.data<T>();
    for (int64_t i = 0; i < nout; ++i)
      dp[i] = static_cast<T>(op == Reduce::mean ? acc[static_cast<size_t>(i)] / count : acc[static_cast<size_t>(i)]);
    copy(dense, out);
  });
}

void RefBackend::copy(const Tensor& src, const Tensor& dst) {
  RESIN_CHECK(src.shape() == dst.shape(), "copy: source shape ", src.shape(), " vs destination ", dst.shape());
  dispatch_dtype(src.dtype(), [&](auto stag) {
    using S = decltype(stag);
    dispatch_dtype(dst.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* sp = static_cast<const S*>(src.raw_data());
      D* dp = static_cast<D*>(dst.raw_data());
      StridedLoop<2> loop(src.shape(), {&src.strides(), &dst.strides()});
      loop.run([&](std::array<int64_t, 2> o, int64_t n, std::array<int64_t, 2> s) {
        for (int64_t i = 0; i < n; ++i) dp[o[1] + i * s[1]] = convert<D>(sp[o[0] + i * s[0]]);
      });
    });
  });
}

void RefBackend::fill(const Tensor& dst, double value) {
  dispatch_dtype(dst.dtype(), [&](auto tag) {
    using D = decltype(tag);
    D* dp = static_cast<D*>(dst.raw_data());
    const D v = convert<D>(value);
    Strides dummy = dst.strides();
    StridedLoop<1> loop(dst.shape(), {&dst.strides()});
    loop.run([&](std::array<int64_t, 1> o, int64_t n, std::array<int64_t, 1> s) {
      for (int64_t i = 0; i < n; ++i) dp[o[0] + i * s[0]] = v;
    });
  });
}

void RefBackend::gather_rows(const Tensor& x, const Tensor& index, const Tensor& out) {
  dispatch_float(x.dtype(), "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    const int64_t* ip = index.data<int64_t>();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.data<T>()[i * out.stride(0)] = x.data<T>()[i * x.stride(0) + ip[i * index.stride(0)] * x.stride(1)];
  });
}

void RefBackend::scatter_rows_add(const Tensor& g, const Tensor& index, const Tensor& gx) {
  dispatch_float(g.dtype(), "scatter_rows_add", [&](auto tag) {
    using T = decltype(tag);
    const int64_t* ip = index.data<int64_t>();
    for (int64_t i = 0; i < g.numel(); ++i)
      gx.data<T>()[i * gx.stride(0) + ip[i * index.stride(0)] * gx.stride(1)] += g.data<T>()[i * g.stride(0)];
  });
}

void RefBackend::index_select(const Tensor& table, const Tensor& index, const Tensor& out) {
  dispatch_float(table.dtype(), "index_select", [&](auto tag) {
    using T = decltype(tag);
    const int64_t* ip = index.data<int64_t>();
    const int64_t n = index.numel(), d = table.size(1);
    for (int64_t i = 0; i < n; ++i) {
      const T* row = table.data<T>() + ip[i] * table.stride(0);
      T* o = out.data<T>() + i * out.stride(0);
      for (int64_t j = 0; j < d; ++j) o[j * out.stride(1)] = row[j * table.stride(1)];
    }
  });
}

void RefBackend::index_add(const Tensor& g, const Tensor& index, const Tensor& gtable) {
  dispatch_float(g.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    const int64_t* ip = index.data<int64_t>();
    const int64_t n = index.numel(), d = gtable.size(1);
    for (int64_t i = 0; i < n; ++i) {
      T* row = gtable.data<T>() + ip[i] * gtable.stride(0);
      const T* gi = g.data<T>() + i * g.stride(0);
      for (int64_t j = 0; j < d; ++j) row[j * gtable.stride(1)] += gi[j * g.stride(1)];
    }
  });
}

}  // namespace resin::backend
