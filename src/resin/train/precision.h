// The --dtype of `resin train` and `resin bench`: which autocast compute type (core/autocast.h) the
// forward passes run under.
#pragma once
#include <string>

#include "resin/core/dtype.h"

namespace resin::train {

// "f32" -> DType::f32 (no autocast); "bf16" -> DType::bf16 (convolutions and matmuls in bf16 with f32
// accumulation; parameters, optimizer state, checkpoints and every other op stay f32). Throws
// resin::Error for other names, for bf16 on a device other than the CPU, and for bf16 on a CPU without
// native bf16 (AVX512_BF16 or AMX): oneDNN would emulate it, slower than f32, which defeats its purpose.
DType autocast_type(const std::string& dtype, const std::string& device = "cpu");

}  // namespace resin::train
