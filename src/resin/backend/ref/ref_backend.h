// Plain-loop kernels for f32 and f64: the oracle every fast kernel is tested against, and the
// fallback for anything a faster backend does not cover. Written for clarity, not speed, except
// the elementwise loops, which run on OpenMP because every backend falls back to them.
#pragma once
#include "resin/backend/backend.h"

namespace resin::backend {

class RefBackend : public Backend {
 public:
  const char* name() const override { return "ref"; }
  void unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) override;
  void unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& gx,
                      UnaryParams p) override;
  void binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce(Reduce op, const Tensor& x, const Tensor& out) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                      const Conv2dParams& p) override;
  void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                            const Conv2dParams& p) override;
  void conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw, const Tensor& gb,
                               const Conv2dParams& p) override;
  void batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   const Tensor& y, const Tensor& mean, const Tensor& var,
                                   double eps) override;
  void batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& mean, const Tensor& var, const Tensor& y,
                                    double eps) override;
  void batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                           const Tensor& gbeta, double eps) override;
  void layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                          const Tensor& mean, const Tensor& rstd, double eps) override;
  void layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                           const Tensor& gbeta) override;
  Tensor pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) override;
  void pool2d_backward(Pool kind, const Tensor& gy, const Tensor& workspace, const Tensor& gx,
                       const Pool2dParams& p) override;
  void softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim,
                        bool log) override;
  void concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) override;
  void gather_rows(const Tensor& x, const Tensor& index, const Tensor& out) override;
  void scatter_rows_add(const Tensor& g, const Tensor& index, const Tensor& gx) override;
  void index_select(const Tensor& table, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& g, const Tensor& index, const Tensor& gtable) override;
};

// Calls f(T{}) for f32/f64 tensors; throws naming `op` otherwise.
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  if (t == DType::f32) return f(float{});
  if (t == DType::f64) return f(double{});
  RESIN_FAIL(op, ": expected a f32 or f64 tensor, got ", t);
}

// Element (n, c, h, w) of a 4-D tensor in any layout.
template <class T>
inline T& at4(const Tensor& t, int64_t n, int64_t c, int64_t h, int64_t w) {
  const auto& s = t.strides();
  return static_cast<T*>(t.raw_data())[n * s[0] + c * s[1] + h * s[2] + w * s[3]];
}

}  // namespace resin::backend
