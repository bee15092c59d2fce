// cuDNN plumbing shared by convolution and batch norm: the two layouts cuDNN is given, RAII
// descriptors, and the alpha/beta blend constants.
#pragma once
#include "resin/backend/cuda/common.h"

namespace resin::backend::cuda {

// NCHW-contiguous or channels-last (NHWC strides). A call uses layout_of(x); other operands are
// copied into it (for cuDNN's sake: mixed layouts are not supported by every algorithm).
enum class Layout { nchw, nhwc };

// x's layout in f32; NCHW in f64 (cuDNN's NHWC convolution and batch-norm kernels are for f32 and
// narrower types).
inline Layout layout_of(const Tensor& x) {
  if (x.dtype() == DType::f64) return Layout::nchw;
  return x.is_channels_last() && !x.is_contiguous() ? Layout::nhwc : Layout::nchw;
}
inline Strides layout_strides(const Shape& s, Layout l) {
  return l == Layout::nhwc ? channels_last_strides(s) : contiguous_strides(s);
}
// True when t's memory order is l's (size-1 dims may carry any stride: addresses agree then).
inline bool in_layout(const Tensor& t, Layout l) { return l == Layout::nhwc ? t.is_channels_last() : t.is_contiguous(); }
inline Tensor to_layout(const Tensor& t, Layout l) {
  return !t.defined() || in_layout(t, l) ? t : with_strides(t, layout_strides(t.shape(), l));
}
inline OutProxy layout_out(const Tensor& t, Layout l) {
  return OutProxy(t, !t.defined() || in_layout(t, l), t.defined() ? layout_strides(t.shape(), l) : Strides{});
}

cudnnDataType_t cudnn_type(DType t);

// Descriptors are described by the layout's canonical strides (not the tensor's own, which may
// differ on size-1 dims and are then equivalent).
class TensorDesc {
 public:
  TensorDesc(DType t, const Shape& s4, Layout l);
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

class FilterDesc {
 public:
  FilterDesc(DType t, const Shape& oihw, Layout l);
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
  cudnnFilterDescriptor_t get() const { return d_; }

 private:
  cudnnFilterDescriptor_t d_ = nullptr;
};

// alpha = 1 / beta = 0 (or 1) in the scaling type cuDNN expects for the data type.
const void* blend_one(DType t);
const void* blend_zero(DType t);

}  // namespace resin::backend::cuda
