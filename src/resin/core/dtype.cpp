#include "resin/core/dtype.h"

#include "resin/core/error.h"

namespace resin {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i64: return 8;
    case DType::i32: return 4;
    case DType::u8: return 1;
    case DType::f16:
      return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i64: return "i64";
    case DType::i32: return "i32";
    case DType::u8: return "u8";
    case DType::f16:
      return "f16";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "float32") return DType::f32;
  if (n == "f64" || n == "float64") return DType::f64;
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  if (n == "f16" || n == "float16" || n == "half") return DType::f16;
  if (n == "i64" || n == "int64") return DType::i64;
  if (n == "i32" || n == "int32") return DType::i32;
  if (n == "u8" || n == "uint8") return DType::u8;
  RESIN_FAIL("unknown dtype '", n, "' (expected one of f32, f64, bf16, f16, i64, i32, u8)");
}

bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

}  // namespace resin
