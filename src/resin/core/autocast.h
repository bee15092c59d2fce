// Mixed precision, like torch.autocast(device_type="cpu", dtype=torch.bfloat16): a thread-local
// compute type for the matrix-heavy ops.
//
//   { resin::AutocastGuard guard(DType::bf16); loss = cross_entropy(model->forward(x), y); }
//   loss.backward();  // the gradients of autocast ops run in bf16 too, wherever backward is called
//
// Under bf16, conv2d (forward, backward-data, backward-weights) and matmul/linear on f32 CPU tensors
// round their inputs (activations, weights, incoming gradients) to bf16 and accumulate in f32; their
// outputs and gradients stay f32 tensors. Everything else (batch norm, activations, softmax and
// losses, reductions, the optimizer) is untouched and runs in f32, and parameters stay f32: they are
// the master weights, converted per call. bf16 has f32's exponent range, so no loss scaling.
// An op records the compute type in force when it ran and its backward node re-enters it.
//
// Only the oneDNN CPU backend acts on it, and only where oneDNN runs bf16 natively
// (backend::bf16_compute_supported(): AVX512_BF16 or AMX); elsewhere, and for f64 tensors, CUDA and the
// reference backend, the ops compute exactly as without the guard (autocast may lower precision,
// it never changes results beyond bf16 rounding).
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
