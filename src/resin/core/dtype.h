// Element types. f32 computes, f64 is the reference/gradcheck type, bf16 and f16 are stored
// (converted to f32 to compute; autocast computes in them where a backend has fast kernels), i64/i32
// hold labels and indices, u8 holds images.
#pragma once
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>

namespace resin {

enum class DType : uint8_t { f32, f64, bf16, i64, i32, u8, f16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);  // throws on unknown names
bool is_floating(DType t);
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

// bfloat16: the upper 16 bits of an IEEE float; conversion rounds to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a quiet NaN
      bits = static_cast<uint16_t>((u >> 16) | 0x40);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// IEEE 754 binary16 (CUDA's half): 5 exponent bits, 10 mantissa bits, largest finite 65504.
// Conversion from float rounds to nearest even; beyond the largest finite value it gives ±inf, below
// half the smallest subnormal (2^-25) ±0; NaN stays a quiet NaN.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {  // NaN: quiet, keeping the payload's top bits
      bits = static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    } else if (a >= 0x47800000u) {  // >= 2^16 (and inf): beyond rounding range
      bits = static_cast<uint16_t>(sign | 0x7c00u);
    } else if (a >= 0x38800000u) {  // normal in half (>= 2^-14): rebias, round 23 -> 10 mantissa bits
      uint32_t v = a - 0x38000000u;
      v += 0xfffu + ((v >> 13) & 1u);  // a carry into the exponent is the right rounding (to inf, too)
      bits = static_cast<uint16_t>(sign | (v >> 13));
    } else if (a > 0x33000000u) {  // subnormal in half: (1.m × 2^(e-150)) / 2^-24 = m >> (126 - e)
      const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
      const uint32_t shift = 126 - e, k = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
      bits = static_cast<uint16_t>(sign | (k + (rem > half || (rem == half && (k & 1u)))));
    } else {  // <= 2^-25 (a tie at 2^-25 goes to the even 0)
      bits = sign;
    }
  }
  explicit operator float() const {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16, e = (bits >> 10) & 0x1fu,
                   m = bits & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
      u = sign | 0x7f800000u | (m << 13);
    } else if (e != 0) {
      u = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
      u = sign;
    } else {  // subnormal: m × 2^-24, exact in float
      const float f = static_cast<float>(m) * 5.9604644775390625e-08f;
      std::memcpy(&u, &f, 4);
      u |= sign;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

// The 16-bit floats resin stores and converts through float.
template <class T>
inline constexpr bool is_half_float_v = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <>
struct dtype_of<Float16> {
  static constexpr DType value = DType::f16;
};

// Calls f with a value of the C++ type for t: dispatch_dtype(t, [&](auto tag) { using T = decltype(tag); });
template <class F>
decltype(auto) dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(BFloat16{});
    case DType::i64: return f(int64_t{});
    case DType::i32: return f(int32_t{});
    case DType::u8: return f(uint8_t{});
    case DType::f16:
      return f(Float16{});
  }
  return f(float{});
}

}  // namespace resin
