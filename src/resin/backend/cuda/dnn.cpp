// Batch norm on cuDNN and matmul on cuBLAS (bf16/f16 under autocast: core/autocast.h).
#include <algorithm>

#include "resin/backend/cuda/cuda_backend.h"
#include "resin/backend/cuda/cudnn_util.h"

namespace resin::backend {

using namespace cuda;

namespace {

// A [C] vector on x's device: v itself (dense) or a constant when v is undefined.
Tensor vector_or(const Tensor& v, const Tensor& x, double constant) {
  if (v.defined()) return dense_on_device(v);
  return full(Shape{x.size(1)}, constant, {.dtype = x.dtype(), .device = x.device()});
}

void check_bn(const char* op, const Tensor& x) {
  RESIN_CHECK(x.dim() == 4, op, ": expected a 4-D input, got ", x.shape());
  RESIN_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, op, ": expected f32 or f64, got ", x.dtype());
}

}  // namespace

void CudaBackend::batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                              const Tensor& y, const Tensor& mean, const Tensor& var, double eps) {
  check_operands("batch_norm", x.device(), {&x, &gamma, &beta, &y, &mean, &var});
  check_bn("batch_norm", x);
  const int64_t C = x.size(1);
  if (x.numel() == 0) return;
  const Layout l = layout_of(x);
  const Tensor xl = to_layout(x, l), scale = vector_or(gamma, x, 1.0), shift = vector_or(beta, x, 0.0);
  const OutProxy yo = layout_out(y, l), mo = contiguous_out(mean), vo = contiguous_out(var);
  auto& ctx = enter(x);
  const TensorDesc xd(x.dtype(), x.shape(), l), yd(y.dtype(), y.shape(), l), bd(x.dtype(), Shape{1, C, 1, 1}, Layout::nchw);
  // The batch statistics come from cuDNN's saved mean and inverse standard deviation,
  // 1 / sqrt(var + eps) of the biased variance that normalised the batch; var is recovered from it.
  Tensor inv_std = empty(Shape{C}, {.dtype = x.dtype(), .device = x.device()});
  check_cudnn(cudnnBatchNormalizationForwardTraining(ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, blend_one(x.dtype()),
                                                     blend_zero(x.dtype()), xd.get(), ptr(xl), yd.get(), ptr(yo.work),
                                                     bd.get(), ptr(scale), ptr(shift), 1.0, nullptr, nullptr, eps,
                                                     ptr(mo.work), ptr(inv_std)),
              "batch_norm forward");
  launch_var_from_inv_std(ctx.stream, scalar_type(x.dtype()), C, ptr(inv_std), eps, ptr(vo.work));
  yo.finish();
  mo.finish();
  vo.finish();
}

void CudaBackend::batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                               const Tensor& mean, const Tensor& var, const Tensor& y, double eps) {
  check_operands("batch_norm", x.device(), {&x, &gamma, &beta, &mean, &var, &y});
  check_bn("batch_norm", x);
  if (x.numel() == 0) return;
  const int64_t C = x.size(1);
  const Layout l = layout_of(x);
  const Tensor xl = to_layout(x, l), scale = vector_or(gamma, x, 1.0), shift = vector_or(beta, x, 0.0),
               m = dense_on_device(mean), v = dense_on_device(var);
  const OutProxy yo = layout_out(y, l);
  auto& ctx = enter(x);
  const TensorDesc xd(x.dtype(), x.shape(), l), yd(y.dtype(), y.shape(), l), bd(x.dtype(), Shape{1, C, 1, 1}, Layout::nchw);
  check_cudnn(cudnnBatchNormalizationForwardInference(ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, blend_one(x.dtype()),
                                                      blend_zero(x.dtype()), xd.get(), ptr(xl), yd.get(), ptr(yo.work),
                                                      bd.get(), ptr(scale), ptr(shift), ptr(m), ptr(v), eps),
              "batch_norm inference");
  yo.finish();
}

void CudaBackend::batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                                      const Tensor& gamma, const Tensor& gx, const Tensor& ggamma, const Tensor& gbeta,
                                      double eps) {
  check_operands("batch_norm_backward", x.device(), {&x, &gy, &mean, &var, &gamma, &gx, &ggamma, &gbeta});
  check_bn("batch_norm_backward", x);
  const int64_t C = x.size(1);
  if (x.numel() == 0) {
    for (const Tensor* t : {&ggamma, &gbeta})
      if (t->defined()) fill(*t, 0.0);
    return;
  }
  // x, dy and dx share one descriptor in cuDNN's backward: all in x's layout.
  const Layout l = layout_of(x);
  const Tensor xl = to_layout(x, l), gyl = to_layout(gy, l), scale = vector_or(gamma, x, 1.0),
               m = dense_on_device(mean);
  const Tensor dx = gx.defined() ? Tensor() : empty_strided(x.shape(), layout_strides(x.shape(), l),
                                                             {.dtype = x.dtype(), .device = x.device()});
  const OutProxy gxo = layout_out(gx.defined() ? gx : dx, l);
  const Tensor dscale = ggamma.defined() ? Tensor() : empty(Shape{C}, {.dtype = x.dtype(), .device = x.device()});
  const Tensor dshift = gbeta.defined() ? Tensor() : empty(Shape{C}, {.dtype = x.dtype(), .device = x.device()});
  const OutProxy ggo = contiguous_out(ggamma.defined() ? ggamma : dscale), gbo = contiguous_out(gbeta.defined() ? gbeta : dshift);
  auto& ctx = enter(x);
  Tensor inv_std = empty(Shape{C}, {.dtype = x.dtype(), .device = x.device()});
  const Tensor v = dense_on_device(var);
  launch_rsqrt_eps(ctx.stream, scalar_type(x.dtype()), C, ptr(v), eps, ptr(inv_std));
  const TensorDesc xd(x.dtype(), x.shape(), l), bd(x.dtype(), Shape{1, C, 1, 1}, Layout::nchw);
  const void* one = blend_one(x.dtype());
  const void* zero = blend_zero(x.dtype());
  check_cudnn(cudnnBatchNormalizationBackward(ctx.cudnn, CUDNN_BATCHNORM_SPATIAL, one, zero, one, zero, xd.get(),
                                              ptr(xl), xd.get(), ptr(gyl), xd.get(), ptr(gxo.work), bd.get(),
                                              ptr(scale), ptr(ggo.work), ptr(gbo.work), eps, ptr(m), ptr(inv_std)),
              "batch_norm backward");
  gxo.finish();
  ggo.finish();
  gbo.finish();
}

namespace {

// One operand of a GEMM as cuBLAS sees it: rows x cols per batch, stored row- or column-major with
// leading dimension ld, batches `batch_stride` apart.
struct Operand {
  Tensor t;  // the tensor the pointer belongs to (a copy when the original was not usable)
  bool row_major = true;
  int64_t ld = 1, batch_stride = 0;
};

// rows/cols strides usable as a BLAS matrix: unit stride on one dim, and ld large enough on the other.
Operand as_blas(const Tensor& t) {
  const int64_t R = t.size(1), C = t.size(2), sr = t.stride(1), sc = t.stride(2);
  Operand o;
  o.t = t;
  o.batch_stride = t.size(0) == 1 ? 0 : t.stride(0);
  if ((sc == 1 || C == 1) && sr >= std::max<int64_t>(C, 1)) {
    o.row_major = true;
    o.ld = std::max<int64_t>(sr, std::max<int64_t>(C, 1));
    return o;
  }
  if ((sr == 1 || R == 1) && sc >= std::max<int64_t>(R, 1)) {
    o.row_major = false;
    o.ld = std::max<int64_t>(sc, std::max<int64_t>(R, 1));
    return o;
  }
  o.t = with_strides(t, contiguous_strides(t.shape()));
  o.row_major = true;
  o.ld = std::max<int64_t>(C, 1);
  o.batch_stride = t.size(0) == 1 ? 0 : R * C;
  return o;
}

int blas_int(int64_t v, const char* what) {
  RESIN_CHECK(v <= INT32_MAX, "matmul: ", what, " ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

}  // namespace

void CudaBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_operands("matmul", out.device(), {&a, &b, &out});
  RESIN_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3, "matmul: expected [B, M, K] @ [B, K, N]");
  RESIN_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), "matmul: dtype mismatch");
  // C is written as f32 or f64 below (half types are computed from f32 operands by autocast).
  RESIN_CHECK(out.dtype() == DType::f32 || out.dtype() == DType::f64, "matmul: no CUDA kernel for ",
              out.dtype());
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (out.numel() == 0) return;
  if (K == 0) {
    fill(out, 0.0);
    return;
  }
  // cuBLAS is column-major. The output decides the orientation: a column-major C is computed as
  // C = op(A) op(B); a row-major C as its column-major transpose C^T = op(B)^T op(A)^T.
  // Under bf16/f16 autocast, A and B are converted (row-major copies) and C stays f32: cuBLAS
  // multiplies bf16/f16 with f32 accumulation and output.
  const DType ct = autocast_compute(out.dtype());
  auto in_compute = [&](const Tensor& t) {
    if (t.dtype() == ct) return t;
    if (t.size(0) > 1 && t.stride(0) == 0) {  // a broadcast batch: convert one matrix, keep the stride 0
      const Tensor one = t.narrow(0, 0, 1);
      return converted(one, ct, contiguous_strides(one.shape())).expand(t.shape());
    }
    return converted(t, ct, contiguous_strides(t.shape()));
  };
  const Operand oa = as_blas(in_compute(a)), ob = as_blas(in_compute(b));
  Operand oc = as_blas(out);
  Tensor result = out;
  if (!oc.t.is_same(out)) {  // out is not a BLAS matrix: compute into a dense temporary
    result = empty(out.shape(), {.dtype = out.dtype(), .device = out.device()});
    oc = as_blas(result);
  }
  const bool f64 = out.dtype() == DType::f64;
  const cudaDataType_t type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cudaDataType_t ab_type = ct == DType::bf16 ? CUDA_R_16BF : ct == DType::f16 ? CUDA_R_16F : type;
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
  auto& ctx = enter(out);
  auto trans = [](bool row_major_operand, bool row_major_view) {
    return row_major_operand == row_major_view ? CUBLAS_OP_N : CUBLAS_OP_T;
  };
  cublasStatus_t s;
  if (!oc.row_major) {
    // Column-major view: A is M x K, B is K x N; a row-major operand is its own transpose.
    s = cublasGemmStridedBatchedEx(
        ctx.cublas, trans(oa.row_major, false), trans(ob.row_major, false), blas_int(M, "M"),
        blas_int(N, "N"), blas_int(K, "K"), blend_one(out.dtype()), ptr(oa.t), ab_type,
        blas_int(oa.ld, "lda"), oa.batch_stride, ptr(ob.t), ab_type, blas_int(ob.ld, "ldb"), ob.batch_stride,
        blend_zero(out.dtype()), ptr(oc.t), type, blas_int(oc.ld, "ldc"), oc.batch_stride,
        blas_int(B, "batch"), compute, CUBLAS_GEMM_DEFAULT);
  } else {
    // Row-major C: C^T (N x M, column-major) = B^T (N x K) A^T (K x M); a row-major operand read
    // column-major is already the transpose, so it goes in untransposed.
    s = cublasGemmStridedBatchedEx(
        ctx.cublas, trans(ob.row_major, true), trans(oa.row_major, true), blas_int(N, "N"), blas_int(M, "M"),
        blas_int(K, "K"), blend_one(out.dtype()), ptr(ob.t), ab_type, blas_int(ob.ld, "ldb"), ob.batch_stride,
        ptr(oa.t), ab_type, blas_int(oa.ld, "lda"), oa.batch_stride, blend_zero(out.dtype()), ptr(oc.t), type,
        blas_int(oc.ld, "ldc"), oc.batch_stride, blas_int(B, "batch"), compute, CUBLAS_GEMM_DEFAULT);
  }
  check_cublas(s, "matmul");
  if (!result.is_same(out)) copy(result, out);
}

}  // namespace resin::backend
