// Element storage of the emulated cuBLAS and cuDNN: f32, f64, IEEE half and bfloat16, each with an
// exact decode to double and a round-to-nearest-even encode straight from double (no double rounding
// through float).
#pragma once
#include <cmath>
#include <cstdint>

namespace resin::cuda_emulation {

// Encodes `value` as a binary floating-point number with `exponent_bits` exponent bits and
// `fraction_bits` stored fraction bits (IEEE half: 5/10, bfloat16: 8/7), rounding to nearest even
// straight from double, so there is no double rounding through float.
inline uint16_t encode_small_float(double value, int exponent_bits, int fraction_bits) {
  const uint16_t sign = std::signbit(value) ? uint16_t(1u << (exponent_bits + fraction_bits)) : uint16_t(0);
  const uint16_t exponent_all_ones = uint16_t(((1u << exponent_bits) - 1) << fraction_bits);
  if (std::isnan(value)) return uint16_t(sign | exponent_all_ones | (1u << (fraction_bits - 1)));
  const double magnitude = std::fabs(value);
  if (std::isinf(magnitude)) return uint16_t(sign | exponent_all_ones);
  if (magnitude == 0) return sign;
  const int bias = (1 << (exponent_bits - 1)) - 1;
  const int min_exponent = 1 - bias;  // of normal numbers
  const int max_exponent = bias;
  int exponent = std::ilogb(magnitude);
  if (exponent < min_exponent) exponent = min_exponent;  // subnormal: fixed quantum
  // Scaling by a power of two is exact; nearbyint rounds to nearest even in the default FP environment.
  double significand = std::nearbyint(std::ldexp(magnitude, fraction_bits - exponent));
  const double implicit_one = std::ldexp(1.0, fraction_bits);
  if (significand >= 2 * implicit_one) {  // rounding carried into the next binade
    significand /= 2;
    ++exponent;
  }
  if (exponent > max_exponent) return uint16_t(sign | exponent_all_ones);         // overflow to infinity
  if (significand < implicit_one) return uint16_t(sign | uint16_t(significand));  // subnormal or zero
  const auto biased_exponent = uint16_t(exponent + bias);
  const auto fraction = uint16_t(significand - implicit_one);
  return uint16_t(sign | (biased_exponent << fraction_bits) | fraction);
}

inline double decode_small_float(uint16_t bits, int exponent_bits, int fraction_bits) {
  const bool negative = (bits >> (exponent_bits + fraction_bits)) & 1u;
  const unsigned biased_exponent = (bits >> fraction_bits) & ((1u << exponent_bits) - 1);
  const unsigned fraction = bits & ((1u << fraction_bits) - 1);
  const int bias = (1 << (exponent_bits - 1)) - 1;
  double magnitude;
  if (biased_exponent == 0) {
    magnitude = std::ldexp(double(fraction), 1 - bias - fraction_bits);
  } else if (biased_exponent == (1u << exponent_bits) - 1) {
    magnitude = fraction == 0 ? HUGE_VAL : std::nan("");
  } else {
    magnitude =
        std::ldexp(double(fraction + (1u << fraction_bits)), int(biased_exponent) - bias - fraction_bits);
  }
  return negative ? -magnitude : magnitude;
}

struct F32 {
  using stored = float;
  static double decode(float v) { return v; }
  static float encode(double v) { return float(v); }  // the FPU rounds to nearest even
};
struct F64 {
  using stored = double;
  static double decode(double v) { return v; }
  static double encode(double v) { return v; }
};
struct F16 {  // IEEE binary16
  using stored = uint16_t;
  static double decode(uint16_t v) { return decode_small_float(v, 5, 10); }
  static uint16_t encode(double v) { return encode_small_float(v, 5, 10); }
};
struct BF16 {  // the top 16 bits of an IEEE binary32
  using stored = uint16_t;
  static double decode(uint16_t v) { return decode_small_float(v, 8, 7); }
  static uint16_t encode(double v) { return encode_small_float(v, 8, 7); }
};

}  // namespace resin::cuda_emulation
