// Elementwise kernels: unary (+ backward), binary, where, copy with conversion, fill. One kernel
// per dtype with the op chosen by a switch (uniform across a warp), so there are few instantiations.
// The formulas are the reference backend's (ref/elementwise.cpp), in the operand type.
#include <cmath>
#include <cstring>
#include <type_traits>

#include "resin/backend/cuda/device_util.cuh"
#include "resin/core/convert.h"

namespace resin::backend::cuda {
namespace {

template <class T>
__device__ __forceinline__ T unary_value(UnaryOp op, T x, T alpha, T beta) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return exp(x);
    case UnaryOp::log: return log(x);
    case UnaryOp::sqrt: return sqrt(x);
    case UnaryOp::rsqrt: return T(1) / sqrt(x);
    case UnaryOp::abs: return fabs(x);
    case UnaryOp::relu: return x > T(0) || x != x ? x : T(0);  // NaN passes, as on the CPU
    case UnaryOp::leaky_relu: return x > T(0) ? x : alpha * x;
    case UnaryOp::gelu: return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
    case UnaryOp::gelu_tanh: {
      const T k = T(0.7978845608028654);
      return T(0.5) * x * (T(1) + tanh(k * (x + T(0.044715) * x * x * x)));
    }
    case UnaryOp::sigmoid: return T(1) / (T(1) + exp(-x));
    case UnaryOp::tanh: return tanh(x);
    case UnaryOp::softplus: {
      const T bx = alpha * x;
      return bx > beta ? x : log1p(exp(bx)) / alpha;
    }
    case UnaryOp::pow: return pow(x, alpha);
    case UnaryOp::clamp: {  // std::min(std::max(x, lo), hi), NaN passing through as there
      const T m = x < alpha ? alpha : x;
      return beta < m ? beta : m;
    }
  }
  return x;
}

template <class T>
__device__ __forceinline__ T unary_derivative(UnaryOp op, T x, T y, T alpha, T beta, bool alpha_is_zero) {
  switch (op) {
    case UnaryOp::neg: return T(-1);
    case UnaryOp::exp: return y;
    case UnaryOp::log: return T(1) / x;
    case UnaryOp::sqrt: return T(0.5) / y;
    case UnaryOp::rsqrt: return T(-0.5) * y * y * y;
    case UnaryOp::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    case UnaryOp::relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::leaky_relu: return x > T(0) ? T(1) : alpha;
    case UnaryOp::gelu: {
      const T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
      const T pdf = exp(T(-0.5) * x * x) * T(0.3989422804014327);
      return cdf + x * pdf;
    }
    case UnaryOp::gelu_tanh: {
      const T k = T(0.7978845608028654);
      const T t = tanh(k * (x + T(0.044715) * x * x * x));
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3 * 0.044715) * x * x);
    }
    case UnaryOp::sigmoid: return y * (T(1) - y);
    case UnaryOp::tanh: return T(1) - y * y;
    case UnaryOp::softplus: {
      const T bx = alpha * x;
      return bx > beta ? T(1) : T(1) / (T(1) + exp(-bx));
    }
    case UnaryOp::pow: return alpha_is_zero ? T(0) : alpha * pow(x, alpha - T(1));
    case UnaryOp::clamp: return (x >= alpha && x <= beta) ? T(1) : T(0);
  }
  return T(0);
}

template <class T>
__device__ __forceinline__ T binary_value(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::eq: return a == b ? T(1) : T(0);
    case BinaryOp::gt: return a > b ? T(1) : T(0);
    case BinaryOp::lt: return a < b ? T(1) : T(0);
  }
  return a;
}

template <class T>
__global__ void unary_kernel(UnaryOp op, Indexer<2> ix, const T* x, T* out, T alpha, T beta) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[2];
    offsets_of(ix, i, o);
    out[o[1]] = unary_value(op, x[o[0]], alpha, beta);
  }
}

template <class T>
__global__ void unary_backward_kernel(UnaryOp op, Indexer<4> ix, const T* x, const T* y, const T* gy, T* gx, T alpha,
                                      T beta, bool alpha_is_zero) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[4];
    offsets_of(ix, i, o);
    // ReLU selects as PyTorch's threshold_backward: 0 where x ≤ 0 even for a NaN gradient.
    gx[o[3]] = op == UnaryOp::relu
                   ? (x[o[0]] <= T(0) ? T(0) : gy[o[2]])
                   : gy[o[2]] * unary_derivative(op, x[o[0]], y[o[1]], alpha, beta, alpha_is_zero);
  }
}

template <class T>
__global__ void binary_kernel(BinaryOp op, Indexer<3> ix, const T* a, const T* b, T* out) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[3];
    offsets_of(ix, i, o);
    out[o[2]] = binary_value(op, a[o[0]], b[o[1]]);
  }
}

template <class T>
__global__ void where_kernel(Indexer<4> ix, const T* cond, const T* a, const T* b, T* out) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[4];
    offsets_of(ix, i, o);
    out[o[3]] = cond[o[0]] != T(0) ? a[o[1]] : b[o[2]];
  }
}

// Conversions as the reference backend's convert<D>(S): through float for bf16 and f16, saturating
// truncation from floating point to integers (core/convert.h), static_cast otherwise.
template <class D, class S>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<S, Bf16>) {
    return convert<D>(bf16_to_float(v));
  } else if constexpr (std::is_same_v<S, F16>) {
    return convert<D>(f16_to_float(v));
  } else if constexpr (std::is_same_v<D, Bf16>) {
    return float_to_bf16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<D, F16>) {
    return float_to_f16(static_cast<float>(v));
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    return float_to_integer<D>(v);
  } else {
    return static_cast<D>(v);
  }
}

template <class S, class D>
__global__ void copy_kernel(Indexer<2> ix, const S* src, D* dst) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[2];
    offsets_of(ix, i, o);
    dst[o[1]] = convert<D>(src[o[0]]);
  }
}

template <class E>
__global__ void fill_kernel(Indexer<1> ix, E* dst, E value) {
  RESIN_GRID_LOOP(i, ix.numel) {
    int64_t o[1];
    offsets_of(ix, i, o);
    dst[o[0]] = value;
  }
}

template <class E>
__global__ void fill_dense_kernel(E* dst, int64_t n, E value) {
  RESIN_GRID_LOOP(i, n) dst[i] = value;
}

// Calls f(T{}) for the C++ type of a scalar type.
template <class F>
void dispatch_all(ScalarType t, F&& f) {
  switch (t) {
    case ScalarType::f32: return f(float{});
    case ScalarType::f64: return f(double{});
    case ScalarType::bf16: return f(Bf16{});
    case ScalarType::i64: return f(int64_t{});
    case ScalarType::i32: return f(int32_t{});
    case ScalarType::u8: return f(uint8_t{});
    case ScalarType::f16:
      return f(F16{});
  }
}

template <class F>
void dispatch_bytes(int elem_size, F&& f) {
  switch (elem_size) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
  }
  RESIN_FAIL("fill: element size ", elem_size, " is not 1, 2, 4 or 8");
}

}  // namespace

bool emulated_gpu() {
#if defined(RESIN_CUDA_EMULATION)
  return true;
#else
  return false;
#endif
}

void launch_unary(cudaStream_t s, UnaryOp op, ScalarType t, const Indexer<2>& ix, const void* x, void* out,
                  double alpha, double beta) {
  dispatch_float(t, "unary", [&](auto tag) {
    using T = decltype(tag);
    launch(unary_kernel<T>, blocks_for(ix.numel), kThreads, s, op, ix, static_cast<const T*>(x),
           static_cast<T*>(out), static_cast<T>(alpha), static_cast<T>(beta));
  });
  check_launch("unary");
}

void launch_unary_backward(cudaStream_t s, UnaryOp op, ScalarType t, const Indexer<4>& ix, const void* x,
                           const void* y, const void* gy, void* gx, double alpha, double beta) {
  dispatch_float(t, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    launch(unary_backward_kernel<T>, blocks_for(ix.numel), kThreads, s, op, ix, static_cast<const T*>(x),
           static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx), static_cast<T>(alpha),
           static_cast<T>(beta), alpha == 0);
  });
  check_launch("unary_backward");
}

void launch_binary(cudaStream_t s, BinaryOp op, ScalarType t, const Indexer<3>& ix, const void* a, const void* b,
                   void* out) {
  dispatch_float(t, "binary", [&](auto tag) {
    using T = decltype(tag);
    launch(binary_kernel<T>, blocks_for(ix.numel), kThreads, s, op, ix, static_cast<const T*>(a),
           static_cast<const T*>(b), static_cast<T*>(out));
  });
  check_launch("binary");
}

void launch_where(cudaStream_t s, ScalarType t, const Indexer<4>& ix, const void* cond, const void* a, const void* b,
                  void* out) {
  dispatch_float(t, "where", [&](auto tag) {
    using T = decltype(tag);
    launch(where_kernel<T>, blocks_for(ix.numel), kThreads, s, ix, static_cast<const T*>(cond),
           static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
  });
  check_launch("where");
}

void launch_copy(cudaStream_t s, ScalarType src_t, ScalarType dst_t, const Indexer<2>& ix, const void* src,
                 void* dst) {
  dispatch_all(src_t, [&](auto stag) {
    using S = decltype(stag);
    dispatch_all(dst_t, [&](auto dtag) {
      using D = decltype(dtag);
      launch(copy_kernel<S, D>, blocks_for(ix.numel), kThreads, s, ix, static_cast<const S*>(src),
             static_cast<D*>(dst));
    });
  });
  check_launch("copy");
}

void launch_fill(cudaStream_t s, const Indexer<1>& ix, void* dst, const void* elem, int elem_size) {
  dispatch_bytes(elem_size, [&](auto tag) {
    using E = decltype(tag);
    E v;
    std::memcpy(&v, elem, sizeof(E));
    launch(fill_kernel<E>, blocks_for(ix.numel), kThreads, s, ix, static_cast<E*>(dst), v);
  });
  check_launch("fill");
}

void launch_fill_dense(cudaStream_t s, void* dst, int64_t count, const void* elem, int elem_size) {
  if (count <= 0) return;
  dispatch_bytes(elem_size, [&](auto tag) {
    using E = decltype(tag);
    E v;
    std::memcpy(&v, elem, sizeof(E));
    launch(fill_dense_kernel<E>, blocks_for(count), kThreads, s, static_cast<E*>(dst), count, v);
  });
  check_launch("fill");
}

}  // namespace resin::backend::cuda
