#include <cmath>

#include "resin/core/cuda.h"
#include "resin/core/rng.h"
#include "resin/tensor/tensor.h"

namespace resin {

Tensor empty_strided(const Shape& s, const Strides& st, TensorOptions o) {
  for (auto d : s) RESIN_CHECK(d >= 0, "empty: negative dimension in shape ", s);
  RESIN_CHECK(st.size() == s.size(), "empty: ", st.size(), " strides for shape ", s);
  bool has_zero = false;
  for (auto d : s) has_zero |= d == 0;
  // Checked: a shape from a file or a user can overflow the element or byte count, and a wrapped
  // size would allocate a small block behind a huge view.
  int64_t span = 1, bytes = 0;
  bool overflow = false;
  for (size_t i = 0; i < s.size() && !has_zero; ++i) {
    RESIN_CHECK(st[i] >= 0, "empty: negative stride in ", st, " for shape ", s);
    int64_t reach = 0;
    overflow |= __builtin_mul_overflow(s[i] - 1, st[i], &reach) || __builtin_add_overflow(span, reach, &span);
  }
  if (has_zero) span = 0;
  overflow |= __builtin_mul_overflow(span, static_cast<int64_t>(dtype_size(o.dtype)), &bytes);
  RESIN_CHECK(!overflow, "empty: shape ", s, " is too large (its byte size overflows 64 bits)");
  auto storage = Storage::allocate(static_cast<size_t>(bytes), o.device);
  Tensor t(std::make_shared<TensorImpl>(storage, s, st, 0, o.dtype));
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor empty(const Shape& s, TensorOptions o) { return empty_strided(s, contiguous_strides(s), o); }

Tensor empty_like(const Tensor& t, MemoryFormat f) {
  const Strides st = f == MemoryFormat::channels_last ? channels_last_strides(t.shape())
                                                      : contiguous_strides(t.shape());
  return empty_strided(t.shape(), st, {.dtype = t.dtype(), .device = t.device()});
}

Tensor empty_like(const Tensor& t) {
  if (t.is_non_overlapping_dense())
    return empty_strided(t.shape(), t.strides(), {.dtype = t.dtype(), .device = t.device()});
  return empty_like(t, t.suggest_memory_format());
}

namespace {
// A finished host tensor moved to `device` (values are drawn on the host, so a seeded factory gives
// the same numbers on every device).
Tensor to_device(const Tensor& host, Device device, bool requires_grad) {
  Tensor t = empty(host.shape(), {.dtype = host.dtype(), .device = device});
  cuda::raw::copy(t.raw_data(), device, host.raw_data(), Device::cpu(),
                  static_cast<size_t>(host.numel()) * dtype_size(host.dtype()));
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

template <class F>
Tensor fill_with(const Shape& s, TensorOptions o, F&& value_at) {
  if (o.device.type != DeviceType::cpu) {
    cuda::check_device(o.device);
    return to_device(fill_with(s, {.dtype = o.dtype}, value_at), o.device, o.requires_grad);
  }
  Tensor t = empty(s, {.dtype = o.dtype, .device = o.device});
  dispatch_dtype(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (is_half_float_v<T>)
        p[i] = T(static_cast<float>(value_at(i)));
      else p[i] = static_cast<T>(value_at(i));
    }
  });
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}
}  // namespace

Tensor full(const Shape& s, double value, TensorOptions o) {
  if (o.device.type == DeviceType::cpu) return fill_with(s, o, [value](int64_t) { return value; });
  // On a device: one element converted on the host, then a fill kernel (no host-to-device copy of
  // the whole tensor, and no wait).
  Tensor one = fill_with(Shape{}, {.dtype = o.dtype}, [value](int64_t) { return value; });
  Tensor t = empty(s, {.dtype = o.dtype, .device = o.device});
  cuda::raw::fill(t.raw_data(), o.device.index, static_cast<size_t>(t.numel()), one.raw_data(), dtype_size(o.dtype));
  if (o.requires_grad) t.set_requires_grad(true);
  return t;
}
Tensor zeros(const Shape& s, TensorOptions o) { return full(s, 0.0, o); }
Tensor ones(const Shape& s, TensorOptions o) { return full(s, 1.0, o); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {.dtype = t.dtype(), .device = t.device()}); }
Tensor scalar_tensor(double value, TensorOptions o) { return full(Shape{}, value, o); }

Tensor arange(double start, double end, double step, TensorOptions o) {
  RESIN_CHECK(step != 0, "arange: step must be non-zero");
  RESIN_CHECK((end - start) / step >= 0, "arange: empty range from ", start, " to ", end,
              " with step ", step);
  const auto n = static_cast<int64_t>(std::ceil((end - start) / step));
  return fill_with(Shape{n}, o, [&](int64_t i) { return start + static_cast<double>(i) * step; });
}

Tensor randn(const Shape& s, TensorOptions o, Generator* g) {
  NormalReader z(g ? *g : default_generator(), s.numel());
  return fill_with(s, o, [&](int64_t) { return z.next(); });
}

Tensor rand(const Shape& s, TensorOptions o, Generator* g) { return uniform(s, 0.0, 1.0, o, g); }

namespace {
// The largest 16-bit float (sign-magnitude bits) below hi.
template <class H>
double half_below(double hi) {
  H b(static_cast<float>(hi));
  if (static_cast<float>(b) >= hi) {  // step one ulp towards -inf
    const float f = static_cast<float>(b);
    b.bits = static_cast<uint16_t>(f > 0.0f ? b.bits - 1 : (b.bits == 0 ? 0x8001 : b.bits + 1));
  }
  return static_cast<float>(b);
}

}  // namespace

// lo + (hi - lo) * u with u < 1 can still round to hi, in double and far more often once narrowed
// to f32 (u > 1 - 2^-25) or bf16 (u > 1 - 2^-9) and f16 (u > 1 - 2^-12).
double largest_below(double hi, DType t) {
  switch (t) {
    case DType::f64: return std::nextafter(hi, -INFINITY);
    case DType::f32: {
      float f = static_cast<float>(hi);
      return f >= hi ? std::nextafter(f, -INFINITY) : f;
    }
    case DType::bf16:
      return half_below<BFloat16>(hi);
    case DType::f16:
      return half_below<Float16>(hi);
    default: return hi;  // integer dtypes truncate
  }
}

Tensor uniform(const Shape& s, double lo, double hi, TensorOptions o, Generator* g) {
  RESIN_CHECK(lo <= hi, "uniform: expected lo <= hi, got ", lo, " and ", hi);
  Generator& gen = g ? *g : default_generator();
  const double top = std::max(lo, largest_below(hi, o.dtype));
  return fill_with(s, o, [&](int64_t) { return std::min(lo + (hi - lo) * gen.uniform(), top); });
}

Tensor randint(int64_t low, int64_t high, const Shape& s, TensorOptions o, Generator* g) {
  RESIN_CHECK(high > low, "randint: expected low < high, got ", low, " and ", high);
  Generator& gen = g ? *g : default_generator();
  return fill_with(s, o, [&](int64_t) {
    return static_cast<double>(low + static_cast<int64_t>(gen.below(static_cast<uint64_t>(high - low))));
  });
}

Tensor from_vector(const std::vector<double>& v, const Shape& s, TensorOptions o) {
  RESIN_CHECK(static_cast<int64_t>(v.size()) == s.numel(), "from_vector: ", v.size(),
              " values for shape ", s, " (", s.numel(), " elements)");
  return fill_with(s, o, [&](int64_t i) { return v[static_cast<size_t>(i)]; });
}

}  // namespace resin
