// Tensor: a shared handle to (storage, shape, strides, offset, dtype, device) plus optional
// autograd state. Copying a Tensor copies the handle, not the data (like torch.Tensor).
//
// Logical layout is always NCHW for 4-D activations; the physical layout is whatever the strides
// say. channels-last is NHWC strides on an NCHW shape (see Note [memory formats] in ops/layout.cpp).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "resin/core/device.h"
#include "resin/core/dtype.h"
#include "resin/core/error.h"
#include "resin/core/shape.h"
#include "resin/tensor/storage.h"

namespace resin {

namespace autograd {
class Node;
}
class TensorImpl;
class Tensor;

// A gradient hook sees the gradient flowing into a tensor; returning a defined tensor replaces it.
using GradHook = std::function<Tensor(const Tensor&)>;
// A post-accumulate hook sees a leaf after its .grad() has been updated by backward (once per
// backward that reaches the leaf), like torch's register_post_accumulate_grad_hook. Used by the
// distributed gradient reducer to start all-reducing gradients while backward goes on.
using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;

enum class MemoryFormat : uint8_t { contiguous, channels_last };

struct TensorOptions {
  DType dtype = DType::f32;
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata
  const Shape& shape() const;
  const Strides& strides() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape().numel(); }
  int64_t offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  bool is_channels_last() const;      // 4-D with NHWC strides
  MemoryFormat suggest_memory_format() const;
  bool is_non_overlapping_dense() const;  // some permutation of the dims is contiguous

  // ---- data access. data<T>() checks the dtype and that the tensor is on the CPU, and points at
  // the first element; raw_data() is the first element's address on the tensor's own device.
  void* raw_data() const;
  template <class T>
  T* data() const {
    RESIN_CHECK(dtype() == dtype_of<T>::value, "Tensor::data: tensor has dtype ", dtype(),
                ", requested ", dtype_of<T>::value);
    RESIN_CHECK(device().type == DeviceType::cpu, "Tensor::data: tensor is on ", device(),
                "; copy it to the CPU first with .to(Device::cpu())");
    return static_cast<T*>(raw_data());
  }
  // These three copy a device tensor to the CPU first (and so wait for its stream).
  double item() const;                      // single element, converted to double
  std::vector<double> to_vector() const;    // all elements in logical order, as double
  template <class T>
  std::vector<T> values() const;            // all elements in logical order, converted

  // ---- autograd
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the accumulated gradient
  std::shared_ptr<autograd::Node> grad_fn() const;
  uint32_t output_nr() const;
  // Backward from this tensor. A non-scalar needs `grad` of the same shape.
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;
  Tensor detach() const;       // same storage, no history
  void retain_grad() const;    // keep .grad() on a non-leaf
  void register_hook(GradHook hook) const;
  // Leaves only (throws otherwise). Hooks run in registration order and cannot be removed; capture
  // a weak_ptr when the hook's owner may die before the tensor.
  void register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const;
  const std::string& name() const;  // optional debugging name shown in printing
  Tensor& set_name(std::string n);

  // ---- views and copies (differentiable; defined in ops/)
  Tensor reshape(const Shape& s) const;
  Tensor view(const Shape& s) const { return reshape(s); }
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  // Python's x[..., start:end:step, ...] along one dim (step > 0); a view.
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor expand(const Shape& s) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor contiguous(MemoryFormat f = MemoryFormat::contiguous) const;
  Tensor clone(MemoryFormat f = MemoryFormat::contiguous) const;
  Tensor to(DType t) const;
  Tensor to(Device d) const;

  std::string str() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

struct AutogradMeta {
  bool requires_grad = false;
  bool retains_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves only
  std::vector<GradHook> hooks;                     // leaves only (non-leaf hooks live on grad_fn)
  std::vector<PostAccumulateGradHook> post_accumulate_hooks;  // leaves only
};

class TensorImpl {
 public:
  TensorImpl(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset,
             DType dtype)
      : storage_(std::move(storage)),
        shape_(std::move(shape)),
        strides_(std::move(strides)),
        offset_(offset),
        dtype_(dtype) {}

  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // The first element's address in the strided layout: a packed storage is unpacked first, so every
  // reader that does not know the packed layout sees the values where the strides say.
  void* data() const {
    if (storage_->packed.load(std::memory_order_acquire)) [[unlikely]]
      unpack_storage(*storage_);
    return storage_->data.get() + offset_ * static_cast<int64_t>(dtype_size(dtype_));
  }

  AutogradMeta* autograd() const { return autograd_.get(); }
  AutogradMeta& autograd_mut() {
    if (!autograd_) autograd_ = std::make_unique<AutogradMeta>();
    return *autograd_;
  }
  std::string name;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_;
  int64_t offset_;
  DType dtype_;
  std::unique_ptr<AutogradMeta> autograd_;
};

// ---- factories (tensor/factory.cpp)
Tensor empty(const Shape& s, TensorOptions o = {});
Tensor empty_strided(const Shape& s, const Strides& st, TensorOptions o = {});
Tensor empty_like(const Tensor& t, MemoryFormat f);  // same dtype/device, given layout
Tensor empty_like(const Tensor& t);                  // same dtype/device, same dense layout
Tensor zeros(const Shape& s, TensorOptions o = {});
Tensor ones(const Shape& s, TensorOptions o = {});
Tensor full(const Shape& s, double value, TensorOptions o = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor scalar_tensor(double value, TensorOptions o = {});
Tensor arange(double start, double end, double step = 1, TensorOptions o = {});
Tensor randn(const Shape& s, TensorOptions o = {}, class Generator* g = nullptr);
Tensor rand(const Shape& s, TensorOptions o = {}, class Generator* g = nullptr);  // U[0,1)
Tensor uniform(const Shape& s, double lo, double hi, TensorOptions o = {}, class Generator* g = nullptr);
// The largest value of dtype t below hi (hi itself for integer dtypes): uniform's cap, so that values
// stay in [lo, hi) after rounding to t.
double largest_below(double hi, DType t);
Tensor randint(int64_t low, int64_t high, const Shape& s, TensorOptions o = {.dtype = DType::i64},
               class Generator* g = nullptr);
// Copies values (converted to o.dtype) into a new contiguous tensor.
Tensor from_vector(const std::vector<double>& v, const Shape& s, TensorOptions o = {});
template <class T>
Tensor from_data(const std::vector<T>& v, const Shape& s) {
  RESIN_CHECK(static_cast<int64_t>(v.size()) == s.numel(), "from_data: ", v.size(),
              " values for shape ", s, " (", s.numel(), " elements)");
  Tensor t = empty(s, {.dtype = dtype_of<T>::value});
  std::copy(v.begin(), v.end(), t.data<T>());
  return t;
}

}  // namespace resin
