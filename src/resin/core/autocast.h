// Mixed precision, like torch.autocast(device_type="cpu", dtype=torch.bfloat16): a thread-local
// compute type for the matrix-heavy ops.
//
//   { resin::AutocastGuard guard(DType::bf16); loss = cross_entropy(model->forward(x), y); }
//   loss.backward();  // the gradients of autocast ops run in bf16 too, wherever backward is called
//
// Under bf16 (or f16), conv2d (forward, backward-data, backward-weights) and matmul/linear on f32
// tensors round their inputs (activations, weights, incoming gradients) to it and accumulate in f32; their
// outputs and gradients stay f32 tensors. Everything else (batch norm, activations, softmax and
// losses, reductions, the optimizer) is untouched and runs in f32, and parameters stay f32: they are
// the master weights, converted per call. bf16 has f32's exponent range, so it needs no loss scaling.
// An op records the compute type in force when it ran and its backward node re-enters it.
//
// Where it acts: the oneDNN CPU backend under bf16, where oneDNN runs bf16 natively
// (backend::bf16_compute_supported(): AVX512_BF16 or AMX); the CUDA backend under bf16 and f16
// (cuDNN convolutions and cuBLAS matmuls on bf16/f16 copies with f32 accumulation, f32 results).
// f16 has a narrow exponent range (largest 65504, smallest subnormal 2^-24 ≈ 6e-8): train with a loss
// scaler (optim/loss_scaler.h; `resin train --dtype f16` does). Elsewhere (f16 on the CPU, f64
// tensors, the reference backend) the ops compute exactly as without the guard: autocast may lower
// precision, it never changes results beyond that rounding.
#pragma once
#include "resin/core/dtype.h"

namespace resin {

// DType::f32 when autocast is off on this thread, else the compute type (DType::bf16).
DType autocast_dtype();
// Throws resin::Error for anything but f32 (off) and bf16.
void set_autocast_dtype(DType t);

// RAII: sets the autocast compute type for this scope (DType::f32 turns it off).
class AutocastGuard {
 public:
  explicit AutocastGuard(DType t) : prev_(autocast_dtype()) { set_autocast_dtype(t); }
  ~AutocastGuard() { set_autocast_dtype(prev_); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType prev_;
};

}  // namespace resin
