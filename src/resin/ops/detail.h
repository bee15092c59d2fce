// Helpers shared by the op implementations (not part of the public API).
#pragma once
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/ops/ops.h"

namespace resin::detail {

using autograd::Node;

// A view of base's storage with the given geometry (no autograd history).
inline Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  return Tensor(std::make_shared<TensorImpl>(base.impl()->storage(), shape, strides, offset, base.dtype()));
}

// Records `node` as the grad_fn of `outputs` when any input requires grad.
template <class NodeT>
void record(const std::shared_ptr<NodeT>& node, const std::vector<const Tensor*>& inputs,
            const std::vector<Tensor*>& outputs) {
  autograd::set_history(node, inputs, outputs);
}

inline void check_defined(const Tensor& t, const char* op, const char* what) {
  RESIN_CHECK(t.defined(), op, ": ", what, " is undefined");
}

inline void check_floating(const Tensor& t, const char* op) {
  RESIN_CHECK(t.defined(), op, ": input is undefined");
  RESIN_CHECK(
      t.dtype() == DType::f32 || t.dtype() == DType::f64, op,
      ": expected a floating tensor (f32 or f64), got ", t.dtype(),
      is_floating(t.dtype()) ? " (bf16 and f16 tensors are storage-only: convert with .to(DType::f32))" : "");
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  RESIN_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", a.dtype(), " vs ", b.dtype());
  RESIN_CHECK(a.device() == b.device(), op, ": device mismatch, ", a.device(), " vs ", b.device());
}

inline backend::Backend& be(const Tensor& t) { return backend::backend_for(t); }

// Options for a new tensor on t's device with t's dtype (or the given one).
inline TensorOptions like(const Tensor& t) { return {.dtype = t.dtype(), .device = t.device()}; }
inline TensorOptions like(const Tensor& t, DType dtype) { return {.dtype = dtype, .device = t.device()}; }

// Index and target tensors must live with the data they index.
inline void check_same_device(const Tensor& data, const Tensor& index, const char* op, const char* what) {
  RESIN_CHECK(data.device() == index.device(), op, ": ", what, " is on ", index.device(), " but the input is on ",
              data.device());
}

// RESIN_NO_FUSION=1 makes the fused ops (add_relu, batch_norm_relu) run as their unfused
// compositions: the same values, for measuring what fusion is worth.
inline bool fusion_disabled() {
  static const bool off = [] {
    const char* e = std::getenv("RESIN_NO_FUSION");
    return e && *e && *e != '0';
  }();
  return off;
}

// The layout a gradient of `x` should have: x's own for 4-D tensors (so channels-last networks get
// channels-last gradients and their kernels never reorder), contiguous otherwise.
inline MemoryFormat grad_format(const Tensor& x) {
  return x.dim() == 4 ? x.suggest_memory_format() : MemoryFormat::contiguous;
}

// Zeros of `shape` in layout `f` (the window-gradient nodes write g into them).
inline Tensor zeros_in(const Shape& shape, const TensorOptions& o, MemoryFormat f) {
  Tensor t = f == MemoryFormat::channels_last ? empty_strided(shape, channels_last_strides(shape), o) : empty(shape, o);
  be(t).fill(t, 0.0);
  return t;
}

}  // namespace resin::detail
