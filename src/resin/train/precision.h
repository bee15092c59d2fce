// The --dtype and --loss-scale of `resin train` and `resin bench`: which autocast compute type
// (core/autocast.h) the forward passes run under, and whether the loss is scaled (optim/loss_scaler.h).
#pragma once
#include <optional>
#include <string>

#include "resin/core/dtype.h"
#include "resin/optim/loss_scaler.h"

namespace resin::train {

// "f32" -> DType::f32 (no autocast); "bf16" / "f16" -> that type (convolutions and matmuls in it with
// f32 accumulation; parameters, optimizer state, checkpoints and every other op stay f32). Throws
// resin::Error for other names; for bf16 on a CPU without native bf16 (AVX512_BF16 or AMX: oneDNN
// would emulate it, slower than f32, which defeats its purpose); for f16 anywhere but a CUDA device
// (oneDNN 2.6 has no fast f16 kernels for these CPUs); for a device name that is neither cpu nor cuda[:N].
DType autocast_type(const std::string& dtype, const std::string& device = "cpu");

// The loss scaler for --loss-scale: "auto" (dynamic for f16, none otherwise: bf16 and f32 have f32's
// exponent range), "dynamic", "none", or a positive number (a static scale). Throws resin::Error for
// anything else, naming the accepted values.
std::optional<optim::LossScaler> loss_scaler_for(const std::string& loss_scale, DType compute);

}  // namespace resin::train
