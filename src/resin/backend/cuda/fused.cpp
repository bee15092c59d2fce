// backend/cuda_fused.h on the kernels of nn.cu and reduce.cu.
#include "resin/backend/cuda_fused.h"

#include "resin/backend/cuda/common.h"
#include "resin/core/cuda.h"

namespace resin::backend::cuda_fused {

using namespace cuda;

namespace {
// Element k of each flat buffer must be the same logical element: same shape, and equal strides on
// every dim that has more than one element.
bool same_order(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

void check_update(const char* op, const Tensor& p, std::initializer_list<const Tensor*> ts) {
  RESIN_CHECK(p.device().type == DeviceType::cuda && p.is_non_overlapping_dense(), op,
              ": expected a dense CUDA parameter");
  RESIN_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, op, ": expected f32 or f64, got ", p.dtype());
  check_operands(op, p.device(), ts);
  for (const Tensor* t : ts)
    if (t->defined())
      RESIN_CHECK(t->dtype() == p.dtype() && same_order(*t, p) && t->is_non_overlapping_dense(), op,
                  ": state and gradient must share the parameter's dtype and layout");
}
}  // namespace

void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a) {
  check_update("SGD", p, {&g, &buf});
  auto& c = enter(p);
  launch_sgd(c.stream, scalar_type(p.dtype()), p.numel(), ptr(p), ptr(g), ptr(buf),
             {a.weight_decay, a.momentum, a.one_minus_dampening, a.neg_lr, a.use_weight_decay, a.use_momentum, a.first,
              a.nesterov});
}

void adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& vmax,
                  const AdamWArgs& a) {
  check_update("AdamW", p, {&g, &m, &v, &vmax});
  auto& c = enter(p);
  launch_adamw(c.stream, scalar_type(p.dtype()), p.numel(), ptr(p), ptr(g), ptr(m), ptr(v), ptr(vmax),
               {a.decay, a.beta1, a.one_minus_beta1, a.beta2, a.one_minus_beta2, a.bias_correction2_sqrt, a.eps,
                a.neg_step_size, a.amsgrad});
}

bool all_finite(const std::vector<Tensor>& ts) {
  if (ts.empty()) return true;
  const Device dev = ts[0].device();
  RESIN_CHECK(dev.type == DeviceType::cuda, "all_finite: expected CUDA tensors, got one on ", dev);
  const Tensor flag = zeros(Shape{1}, {.dtype = DType::i32, .device = dev});
  auto& c = enter(dev.index);
  for (const Tensor& t : ts) {
    RESIN_CHECK(t.device() == dev && t.is_non_overlapping_dense(), "all_finite: expected dense tensors on ", dev);
    launch_nonfinite(c.stream, scalar_type(t.dtype()), ptr(t), t.numel(), static_cast<int*>(ptr(flag)));
  }
  return flag.item() == 0;  // one round trip for all of them
}

}  // namespace resin::backend::cuda_fused
