#include "resin/train/precision.h"

#include "resin/backend/backend.h"
#include "resin/core/error.h"

namespace resin::train {

DType autocast_type(const std::string& dtype, const std::string& device) {
  RESIN_CHECK(dtype == "f32" || dtype == "bf16", "--dtype expects f32 or bf16, got '", dtype, "'");
  if (dtype == "f32") return DType::f32;
  RESIN_CHECK(device == "cpu",
              "--dtype bf16 is CPU-only (bf16 autocast of the oneDNN backend), got --device ", device);
  RESIN_CHECK(backend::bf16_compute_supported(),
              "--dtype bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); oneDNN reports ",
              backend::cpu_isa_name(),
              " here, where bf16 would be emulated and slower than f32. Use --dtype f32.");
  return DType::bf16;
}

}  // namespace resin::train
