// Helpers of the oneDNN kernels: descriptors of resin tensors, a scratch arena and staging
// reorders (Arg). Kernels include this one header.
#pragma once
#include <cstdint>
#include <optional>

#include "resin/backend/cpu/cpu_backend.h"
#include "resin/backend/cpu/dnnl_context.h"
#include "resin/backend/cpu/primitive_cache.h"
#include "resin/tensor/tensor.h"

namespace resin::backend::onednn {

using dnnl::memory;
using Dims = memory::dims;

// ---- descriptors

// The oneDNN data type for a resin dtype (f32, bf16); nullopt for the rest.
std::optional<memory::data_type> dnnl_type(DType t);
bool all_f32(std::initializer_list<const Tensor*> ts);  // every defined tensor is f32
// A dim of size > 1 with stride 0 (an expanded operand).
bool has_broadcast(const Tensor& t);

// Strides with the size-1 dims normalised (contiguous and channels-last layouts get exactly the
// strides of their format tag, so equal layouts compare equal).
Strides normalized_strides(const Shape& shape, const Strides& strides);
inline Strides normalized_strides(const Tensor& t) { return normalized_strides(t.shape(), t.strides()); }
// The tensor's own layout: dims = shape (a 0-d tensor is {1}), strides = normalized_strides.
// Throws dnnl::error for layouts oneDNN cannot describe (overlapping or negative strides).
memory::desc md_of(const Tensor& t);
memory::desc md_of(const Tensor& t, const Dims& dims, const Dims& strides);
// md_of(t), except that a 4-D t whose strides fit both NCHW and NHWC (1x1 spatial or a single
// channel: the bytes are the same) is described as channels-last when `like` is channels-last,
// so a primitive sees matching formats and keeps its fast kernel.
memory::desc md_like(const Tensor& t, const Tensor& like);
// Same dims and type, format_tag::any.
memory::desc any_md(const memory::desc& md);
// md with its data type replaced (same dims and layout).
memory::desc retype(const memory::desc& md, memory::data_type dt);
// Dense row-major descriptor.
memory::desc dense_md(const Dims& dims, memory::data_type dt = memory::data_type::f32);
// True when the implementation oneDNN chose is one of its fast kernels (not gemm-based, not ref).
bool is_fast_impl(const dnnl::primitive_desc_base& pd);

// The type convolutions and matmuls compute in: bf16 under AutocastGuard(DType::bf16) on a CPU
// with native bf16 (bf16_compute_supported()), else f32. Their outputs are f32 either way.
memory::data_type compute_type();

// make(true) builds a bf16 entry (null or dnnl::error: no fast bf16 kernel for this configuration),
// make(false) the f32 one. Under bf16 a configuration without a fast bf16 kernel keeps f32.
template <class Make>
auto bf16_or_f32(bool bf16, Make&& make) -> decltype(make(false)) {
  if (bf16) {
    try {
      if (auto e = make(true)) return e;
    } catch (const dnnl::error&) {
    }
  }
  return make(false);
}

// ---- convolution geometry and algorithm

struct ConvGeometry {
  Dims strides, dilates, pad_l, pad_r;
};
// oneDNN counts dilation from 0. Right padding = left padding: oneDNN's output-size check floors
// like resin's formula, so the symmetric padding always matches y's size.
ConvGeometry conv_geometry(const Conv2dParams& p);
// resin weights [O, C/g, KH, KW] as oneDNN sees them: goihw {g, O/g, C/g, KH, KW} when groups > 1.
memory::desc weights_md(const Tensor& w, int64_t groups);

// Whether a convolution with `ic` input and `oc` output channels and kernel kh×kw should try
// oneDNN's Winograd algorithm (F(4×4, 3×3), blocked layouts only): 3×3, stride 1, no dilation, one
// group, channel counts that fill 16-wide blocks. RESIN_CONV_ALGO=direct turns it off,
// RESIN_CONV_ALGO=winograd on for every eligible shape. Deterministic for a shape, so runs and
// resumed runs pick the same kernels.
bool want_winograd(int64_t ic, int64_t oc, int64_t kh, int64_t kw, const Conv2dParams& p);

// ---- scratch arena

// Thread-local buffers reused from call to call (malloc of activation-sized blocks would fault in
// fresh pages every time). Buffers taken through a Scratch are valid until it is destroyed;
// Scratches nest like a stack. The arena keeps its largest buffers for the thread's lifetime.
class Scratch {
 public:
  Scratch();
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get(size_t bytes);

 private:
  size_t start_;
};

// ---- staging

// A tensor operand whose primitive wants descriptor `want` while the tensor is laid out as
// `user`. When they differ the operand goes through a scratch buffer and a cached reorder.
//
// An activation operand (convolutions' src, dst, diff_dst, diff_src) also knows packed tensors
// (tensor/packing.h): an input packed as `want` is read as it is, one packed otherwise is reordered
// from its packed bytes; an output `want`ing nChw16c is written straight into its storage and the
// storage marked packed, instead of being reordered back.
struct Arg {
  memory::desc user, want;
  std::optional<dnnl::reorder> to_want, to_user;
  std::optional<memory::desc> packed;  // the packed layout of this activation's dims, when it has one
  std::optional<dnnl::reorder> packed_to_want;

  Arg() = default;
  Arg(const memory::desc& user_md, const memory::desc& want_md, bool is_output, bool activation = false);
  bool staged() const { return to_want.has_value() || to_user.has_value(); }

  // Memory holding the operand in `want`: the tensor itself, or a reordered scratch copy. With
  // pack_strided (the caller's output is written packed, so the tensor's other readers are likely
  // packed-aware too), a strided t that `want`s packing is packed in place instead of copied.
  memory in(const Tensor& t, Scratch& s, bool pack_strided = false) const;
  // Whether out(t) writes t packed (this output wants nChw16c, packing is on and t can take it).
  bool writes_packed(const Tensor& t) const;
  // Memory the primitive writes in `want`: the tensor itself, or scratch that out_done() copies back.
  memory out(const Tensor& t, Scratch& s) const;
  void out_done(const memory& m, const Tensor& t) const;
};
// The packed (nChw16c) descriptor of f32 dims [N, C, H, W] with C % 16 == 0; nullopt for others.
std::optional<memory::desc> packed_md(const memory::desc& user);
// Whether an activation Arg's primitive wants its packed layout.
inline bool wants_packed(const Arg& a) { return a.packed && a.want == *a.packed; }

memory wrap(const memory::desc& md, const Tensor& t);
memory wrap(const memory::desc& md, void* p);

}  // namespace resin::backend::onednn
