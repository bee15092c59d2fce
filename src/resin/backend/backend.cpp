#include "resin/backend/backend.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "resin/backend/cpu/cpu_backend.h"
#include "resin/backend/ref/ref_backend.h"
#ifdef RESIN_WITH_CUDA
#include "resin/backend/cuda/cuda_backend.h"
#endif

namespace resin::backend {
namespace {
std::atomic<bool> g_force_ref{[] {
  const char* e = std::getenv("RESIN_BACKEND");
  return e && std::strcmp(e, "ref") == 0;
}()};
}  // namespace

bool conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t* out) {
  if (in < 0 || kernel < 1 || stride < 1 || pad < 0 || dilation < 1) return false;
  int64_t span = 0, padded = 0;
  if (__builtin_mul_overflow(dilation, kernel - 1, &span) || __builtin_mul_overflow(pad, 2, &padded) ||
      __builtin_add_overflow(padded, in, &padded) || padded <= span)
    return false;
  *out = (padded - span - 1) / stride + 1;
  return true;
}

Backend& ref_backend() {
  static RefBackend ref;
  return ref;
}

static Backend& cpu_backend() {
  static CpuBackend cpu;
  return cpu;
}

Backend& backend_for(const Tensor& t) {
  if (t.device().type == DeviceType::cuda) {
    // force_reference does not apply: the reference loops cannot read device memory.
#ifdef RESIN_WITH_CUDA
    return cuda_backend();
#else
    RESIN_FAIL("no backend for device ", t.device(), ": resin was built without CUDA");
#endif
  }
  if (g_force_ref.load() || t.dtype() != DType::f32) return ref_backend();
  return cpu_backend();
}

void Backend::conv2d_backward(const Tensor& x, const Tensor& gy, const Tensor& w, const Tensor& gx,
                              const Tensor& gw, const Tensor& gb, const Conv2dParams& p) {
  if (gx.defined()) conv2d_backward_data(gy, w, gx, p);
  if (gw.defined()) conv2d_backward_weights(x, gy, gw, gb, p);
}

void Backend::add_relu(const Tensor& a, const Tensor& b, const Tensor& y) {
  binary(Binary::add, a, b, y);
  unary(Unary::relu, y, y, {});
}

void Backend::add_relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx) {
  if (!g2.defined()) return unary_backward(Unary::relu, y, y, g1, gx, {});
  Tensor g = empty_like(gx);
  binary(Binary::add, g1, g2, g);
  unary_backward(Unary::relu, y, y, g, gx, {});
}

void Backend::batch_norm_relu_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                               const Tensor& y, const Tensor& mean, const Tensor& var,
                                               double eps) {
  batch_norm_forward_training(x, gamma, beta, y, mean, var, eps);
  unary(Unary::relu, y, y, {});
}

void Backend::batch_norm_relu_backward(const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& mean,
                                       const Tensor& var, const Tensor& gamma, const Tensor& gx,
                                       const Tensor& ggamma, const Tensor& gbeta, double eps) {
  // relu'(x) = [x > 0] = [relu(x) > 0], so y serves as the ReLU's input too.
  Tensor g = empty_like(gy);
  unary_backward(Unary::relu, y, y, gy, g, {});
  batch_norm_backward(x, g, mean, var, gamma, gx, ggamma, gbeta, eps);
}

void set_force_reference(bool on) { g_force_ref.store(on); }
bool force_reference() { return g_force_ref.load(); }

}  // namespace resin::backend
