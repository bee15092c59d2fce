// Host-side plumbing of the CUDA backend: per-device context (stream, cuBLAS and cuDNN handles),
// error checks that throw resin::Error, and the bridge from Tensors to kernel arguments.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <initializer_list>

#include "resin/backend/cuda/kernels.h"
#include "resin/tensor/tensor.h"

namespace resin::backend::cuda {

// One per device, created on first use and never destroyed (tensors in static objects may be
// released after main returns; their memory goes back to the cache, not to a dead driver).
struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;  // every kernel, copy and library call of this device runs here
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
};

// Makes `device` current on this thread and returns its context.
Context& enter(int device);
inline Context& enter(const Tensor& t) { return enter(t.device().index); }

void check_cuda(cudaError_t e, const char* what);
void check_cublas(cublasStatus_t s, const char* what);
void check_cudnn(cudnnStatus_t s, const char* what);

// Every defined operand of a kernel must be on `dev` (ops check devices first; this is the
// backend's own guard against a host pointer reaching a kernel).
void check_operands(const char* op, Device dev, std::initializer_list<const Tensor*> ts);

ScalarType scalar_type(DType t);
inline void* ptr(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

// The shape walked by N operands with their strides, with size-1 dims dropped and dims merged
// where every operand allows (as StridedLoop does). Throws beyond kMaxDims dims.
template <int N>
Indexer<N> make_indexer(const Shape& shape, const std::array<const Strides*, N>& st) {
  Indexer<N> ix;
  ix.numel = shape.numel();
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (ix.ndim > 0) {
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable &= ix.strides[k][ix.ndim - 1] == (*st[k])[d] * shape[d];
      if (mergeable) {
        ix.sizes[ix.ndim - 1] *= shape[d];
        for (int k = 0; k < N; ++k) ix.strides[k][ix.ndim - 1] = (*st[k])[d];
        continue;
      }
    }
    RESIN_CHECK(ix.ndim < kMaxDims, "CUDA backend: a tensor of shape ", shape, " has more than ", kMaxDims,
                " dims that cannot be merged; make it contiguous first");
    ix.sizes[ix.ndim] = shape[d];
    for (int k = 0; k < N; ++k) ix.strides[k][ix.ndim] = (*st[k])[d];
    ++ix.ndim;
  }
  if (ix.ndim == 0) {  // a single element
    ix.ndim = 1;
    ix.sizes[0] = 1;
  }
  return ix;
}

// An output as a kernel wants it: the tensor itself when `usable` (or undefined), else a temporary
// with strides `want` that finish() copies into the tensor.
struct OutProxy {
  Tensor target, work;
  OutProxy(const Tensor& t, bool usable, const Strides& want);
  void finish() const;
};
// An output that kernels write contiguously: t itself when contiguous (or undefined), else a temporary.
OutProxy contiguous_out(const Tensor& t);

// A device tensor with t's values in a dense layout (t itself when it is already dense).
Tensor dense_on_device(const Tensor& t);
// A copy of t in the given strides (t itself when they match).
Tensor with_strides(const Tensor& t, const Strides& st);
// A copy of t in type ct and the given strides, converted by one kernel (t itself when both match).
Tensor converted(const Tensor& t, DType ct, const Strides& st);

// The type cuDNN convolutions and cuBLAS matmuls on operands of type t compute in: under bf16 or
// f16 autocast (core/autocast.h) and for f32 operands, the autocast type (f32 accumulation, results
// converted back to f32); else t.
DType autocast_compute(DType t);

}  // namespace resin::backend::cuda
