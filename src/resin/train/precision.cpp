#include "resin/train/precision.h"

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdlib>

#include "resin/backend/backend.h"
#include "resin/core/cuda.h"
#include "resin/core/device.h"
#include "resin/core/error.h"

namespace resin::train {

DType autocast_type(const std::string& dtype, const std::string& device) {
  RESIN_CHECK(dtype == "f32" || dtype == "bf16" || dtype == "f16", "--dtype expects f32, bf16 or f16, got '",
              dtype, "'");
  const Device dev = parse_device(device);  // throws naming the accepted forms
  const bool on_cuda = dev.type == DeviceType::cuda;
  if (dtype == "f32") return DType::f32;
  if (dtype == "f16") {
    RESIN_CHECK(on_cuda,
                "--dtype f16 runs on CUDA devices only (oneDNN 2.6 has no fast f16 kernels for this CPU); "
                "use --dtype bf16 on CPUs with AVX512_BF16, or f32");
    return DType::f16;
  }
  // cuDNN's bf16 convolutions need Ampere or newer; say so now rather than at the first convolution
  // (a device that does not exist reports 0 and is refused by the device check that follows).
  const int cc = cuda::compute_capability(dev);
  RESIN_CHECK(!on_cuda || cc == 0 || cc >= 80, "--dtype bf16 on ", dev,
              " needs a GPU of compute capability 8.0 or newer (cuDNN's bf16 kernels); this one is ", cc / 10,
              ".", cc % 10, ". Use --dtype f16 or f32.");
  RESIN_CHECK(on_cuda || backend::bf16_compute_supported(),
              "--dtype bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); oneDNN reports ",
              backend::cpu_isa_name(),
              " here, where bf16 would be emulated and slower than f32. Use --dtype f32.");
  return DType::bf16;
}

std::optional<optim::LossScaler> loss_scaler_for(const std::string& loss_scale, DType compute) {
  if (loss_scale == "auto") return compute == DType::f16 ? std::optional(optim::LossScaler()) : std::nullopt;
  if (loss_scale == "none") return std::nullopt;
  if (loss_scale == "dynamic") return optim::LossScaler();
  const char* s = loss_scale.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  RESIN_CHECK(!loss_scale.empty() && end == s + loss_scale.size() && errno == 0 && std::isfinite(v) &&
                  v > 0 && v <= FLT_MAX,
              "--loss-scale expects auto, dynamic, none or a positive number (a static scale), got '",
              loss_scale, "'");
  return optim::LossScaler({.init_scale = v, .dynamic = false});
}

}  // namespace resin::train
