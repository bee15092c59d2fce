// cuda_fused.h in a build without RESIN_WITH_CUDA (the real kernels: backend/cuda/fused.cu).
#ifndef RESIN_WITH_CUDA
#include "resin/backend/cuda_fused.h"

namespace resin::backend::cuda_fused {

namespace {
[[noreturn]] void no_cuda() { RESIN_FAIL("resin was built without CUDA (configure with -DRESIN_WITH_CUDA=ON)"); }
}  // namespace

void sgd_update(const Tensor&, const Tensor&, const Tensor&, const SgdArgs&) { no_cuda(); }
void adamw_update(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const AdamWArgs&) {
  no_cuda();
}
bool all_finite(const std::vector<Tensor>&) { no_cuda(); }

}  // namespace resin::backend::cuda_fused
#endif
