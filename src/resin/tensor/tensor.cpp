#include "resin/tensor/tensor.h"

#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "resin/tensor/iter.h"

namespace resin {

namespace {
// Metadata of an undefined tensor is an error, not a null dereference (an op handed a default-
// constructed Tensor reports it instead of crashing).
TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  RESIN_CHECK(impl != nullptr, "Tensor::", what, ": use of an undefined tensor");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const { return checked(impl_, "shape").shape(); }
const Strides& Tensor::strides() const { return checked(impl_, "strides").strides(); }
int64_t Tensor::size(int64_t d) const {
  RESIN_CHECK(dim() > 0, "size: dim ", d, " requested of a 0-d tensor");
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  RESIN_CHECK(dim() > 0, "stride: dim ", d, " requested of a 0-d tensor");
  return strides()[wrap_dim(d, dim(), "stride")];
}
int64_t Tensor::offset() const { return checked(impl_, "offset").offset(); }
DType Tensor::dtype() const { return checked(impl_, "dtype").dtype(); }
Device Tensor::device() const { return checked(impl_, "device").storage()->device; }
void* Tensor::raw_data() const { return checked(impl_, "data").data(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

bool Tensor::is_channels_last() const {
  if (dim() != 4) return false;
  const Shape& s = shape();
  const Strides& st = strides();
  // Dims of size 1 may have any stride (as in PyTorch's check).
  const int64_t order[4] = {1, 3, 2, 0};  // innermost first: C, W, H, N
  int64_t expected = 1;
  for (int64_t d : order) {
    if (s[d] != 1 && st[d] != expected) return false;
    expected *= s[d];
  }
  return true;
}

MemoryFormat Tensor::suggest_memory_format() const {
  if (dim() == 4 && !is_contiguous() && is_channels_last()) return MemoryFormat::channels_last;
  return MemoryFormat::contiguous;
}

bool Tensor::is_non_overlapping_dense() const {
  std::vector<int64_t> idx(shape().size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return strides()[a] < strides()[b]; });
  int64_t expected = 1;
  for (int64_t d : idx) {
    if (shape()[d] == 1) continue;
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

template <class T>
std::vector<T> Tensor::values() const {
  if (device() != Device::cpu())
    return detach().to(Device::cpu()).values<T>();  // as a GPU tensor (cpu:1 too)
  std::vector<T> out(static_cast<size_t>(numel()));
  if (out.empty()) return out;
  const Strides dense = contiguous_strides(shape());
  StridedLoop<2> loop(shape(), {&dense, &strides()});
  dispatch_dtype(dtype(), [&](auto tag) {
    using S = decltype(tag);
    const S* src = static_cast<const S*>(raw_data());
    loop.run(
        [&](std::array<int64_t, 2> off, int64_t n, std::array<int64_t, 2> st) {
          for (int64_t i = 0; i < n; ++i) {
            if constexpr (is_half_float_v<S>) {
              out[off[0] + i * st[0]] = static_cast<T>(static_cast<float>(src[off[1] + i * st[1]]));
            } else {
              out[off[0] + i * st[0]] = static_cast<T>(src[off[1] + i * st[1]]);
            }
          }
        },
        INT64_MAX);
  });
  return out;
}
template std::vector<double> Tensor::values<double>() const;
template std::vector<float> Tensor::values<float>() const;
template std::vector<int64_t> Tensor::values<int64_t>() const;
template std::vector<int32_t> Tensor::values<int32_t>() const;
template std::vector<uint8_t> Tensor::values<uint8_t>() const;

std::vector<double> Tensor::to_vector() const { return values<double>(); }

double Tensor::item() const {
  RESIN_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return to_vector()[0];
}

// ---- autograd state accessors (the engine lives in autograd/)
bool Tensor::requires_grad() const {
  if (!impl_) return false;
  auto* m = impl_->autograd();
  return m && m->requires_grad;
}
Tensor& Tensor::set_requires_grad(bool r) {
  RESIN_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require ",
              "gradients, got dtype ", dtype());
  RESIN_CHECK(is_leaf() || r, "set_requires_grad(false) on a non-leaf tensor; use detach()");
  checked(impl_, "set_requires_grad").autograd_mut().requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const {
  if (!impl_) return true;
  auto* m = impl_->autograd();
  return !m || !m->grad_fn;
}
Tensor Tensor::grad() const {
  if (!impl_) return Tensor();
  auto* m = impl_->autograd();
  return m ? m->grad : Tensor();
}
void Tensor::set_grad(const Tensor& g) const { checked(impl_, "set_grad").autograd_mut().grad = g; }
void Tensor::zero_grad() const {
  if (!impl_) return;
  if (auto* m = impl_->autograd()) m->grad = Tensor();
}
std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  if (!impl_) return nullptr;
  auto* m = impl_->autograd();
  return m ? m->grad_fn : nullptr;
}
uint32_t Tensor::output_nr() const {
  if (!impl_) return 0;
  auto* m = impl_->autograd();
  return m ? m->output_nr : 0;
}
Tensor Tensor::detach() const {
  const TensorImpl& self = checked(impl_, "detach");
  auto t = std::make_shared<TensorImpl>(self.storage(), self.shape(), self.strides(), self.offset(), self.dtype());
  return Tensor(t);
}
const std::string& Tensor::name() const { return checked(impl_, "name").name; }
Tensor& Tensor::set_name(std::string n) {
  checked(impl_, "set_name").name = std::move(n);
  return *this;
}

// ---- printing: numpy-like, summarised past 1000 elements
std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  const auto v = to_vector();
  const bool fp = is_floating(dtype());
  const bool summarize = numel() > 1000;
  const Shape& s = shape();
  const Strides cs = contiguous_strides(s);
  std::function<void(size_t, int64_t, int)> rec = [&](size_t d, int64_t base, int indent) {
    if (d == s.size()) {
      if (fp) os << std::setw(10) << std::setprecision(4) << v[base];
      else os << static_cast<int64_t>(v[base]);
      return;
    }
    os << "[";
    for (int64_t i = 0; i < s[d]; ++i) {
      if (summarize && s[d] > 6 && i == 3) {
        os << (d + 1 == s.size() ? " ..., " : "...,\n" + std::string(indent + 1, ' '));
        i = s[d] - 4;
        continue;
      }
      rec(d + 1, base + i * cs[d], indent + 1);
      if (i + 1 < s[d]) os << (d + 1 == s.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
    }
    os << "]";
  };
  os << "tensor(";
  rec(0, 0, 7);
  os << ", shape=" << s << ", dtype=" << dtype();
  if (requires_grad()) os << ", requires_grad";
  if (!name().empty()) os << ", name=" << name();
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace resin
