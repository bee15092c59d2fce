// Fused CUDA kernels that the layers above the backend call directly for device tensors: the
// optimizer updates (one kernel per parameter instead of a chain of elementwise ops, with the
// same operation order and fused multiply-adds as the CPU loops in optim/, so a step on the GPU
// rounds exactly as on the CPU) and the trainer's finiteness check (one device round trip for all
// gradients). Built with RESIN_WITH_CUDA; without it these throw "resin was built without CUDA".
#pragma once
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::backend::cuda_fused {

// Scalars in double; the kernels convert them to the parameter dtype as the CPU loops do.
struct SgdArgs {
  double weight_decay = 0, momentum = 0, one_minus_dampening = 1, neg_lr = 0;
  bool use_weight_decay = false, use_momentum = false, first = false, nesterov = false;
};
// p, g and buf (when momentum is used) are f32 or f64 CUDA tensors with one dense layout.
void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a);

struct AdamWArgs {
  double decay = 1, beta1 = 0, one_minus_beta1 = 1, beta2 = 0, one_minus_beta2 = 1, bias_correction2_sqrt = 1,
         eps = 0, neg_step_size = 0;
  bool amsgrad = false;
};
// vmax is undefined unless amsgrad.
void adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& vmax,
                  const AdamWArgs& a);

// True when every element of every (dense, f32/f64, CUDA) tensor is finite.
bool all_finite(const std::vector<Tensor>& ts);

}  // namespace resin::backend::cuda_fused
