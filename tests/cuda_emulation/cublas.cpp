// Emulated cuBLAS: a CPU model of the part of the cuBLAS API that resin uses, linked instead of the real
// library in the emulated-GPU test build (docs/cuda.md, "Emulated GPU"). Device memory is host memory
// (memory.h), so the routines read and write it directly; every device range a call would touch is checked
// first and a bad one is an error status, never a silent wrong result.
//
// Emulated: handle create/destroy, stream and math-mode get/set, status names and strings, and
// cublasGemmStridedBatchedEx for the real floating-point type combinations of the cuBLAS documentation's
// cublasGemmEx table (f32/f64/f16/bf16 inputs; f32/f64/f16/bf16 outputs; 16F, 32F and 64F compute types).
// Products are accumulated in double whatever the compute type (a correctness model, not a precision
// model) and rounded to the output type at the end; f16/bf16 are converted bit by bit, round to nearest even.
//
// Not emulated: device pointer mode (alpha/beta are always host pointers), integer and complex types
// (CUBLAS_STATUS_NOT_SUPPORTED), every other cuBLAS routine. Calls run synchronously, so streams are only
// remembered.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#include "cuda_emulation/live_objects.h"
#include "cuda_emulation/memory.h"
#include "cuda_emulation/storage.h"

// The opaque handle type cublas_api.h declares.
struct cublasContext {
  int device = 0;  // the current device when the handle was created; its data must live there
  cudaStream_t stream = nullptr;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
};

namespace {

using resin::cuda_emulation::BF16;
using resin::cuda_emulation::device_of;
using resin::cuda_emulation::F16;
using resin::cuda_emulation::F32;
using resin::cuda_emulation::F64;
using resin::cuda_emulation::live;

size_t element_size(cudaDataType type) {
  switch (type) {
    case CUDA_R_32F:
      return 4;
    case CUDA_R_64F:
      return 8;
    case CUDA_R_16F:
    case CUDA_R_16BF:
      return 2;
    default:
      return 0;
  }
}

// Calls `fn(Tag{})` with the storage tag of `type` (one of the four element_size knows).
template <typename Fn>
void with_storage(cudaDataType type, Fn&& fn) {
  switch (type) {
    case CUDA_R_32F:
      fn(F32{});
      break;
    case CUDA_R_64F:
      fn(F64{});
      break;
    case CUDA_R_16F:
      fn(F16{});
      break;
    case CUDA_R_16BF:
      fn(BF16{});
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------------------------------------
// The type table of cublasGemmEx in the cuBLAS documentation (also the one cublasGemmStridedBatchedEx
// refers to), restricted to its real floating-point rows. Returns the scalar type of alpha and beta, or
// CUDA_R_8I (never a scale type) when the combination is not supported.

constexpr cudaDataType kUnsupported = CUDA_R_8I;

cudaDataType scale_type_of(cublasComputeType_t compute, cudaDataType a, cudaDataType b, cudaDataType c) {
  if (a != b) return kUnsupported;
  switch (compute) {
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC:
      return a == CUDA_R_16F && c == CUDA_R_16F ? CUDA_R_16F : kUnsupported;
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
      if (a == CUDA_R_32F && c == CUDA_R_32F) return CUDA_R_32F;
      if (a == CUDA_R_16F && (c == CUDA_R_16F || c == CUDA_R_32F)) return CUDA_R_32F;
      if (a == CUDA_R_16BF && (c == CUDA_R_16BF || c == CUDA_R_32F)) return CUDA_R_32F;
      return kUnsupported;  // also the int8 and complex rows, which are not emulated
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
    case CUBLAS_COMPUTE_32F_EMULATED_16BFX9:
      return a == CUDA_R_32F && c == CUDA_R_32F ? CUDA_R_32F : kUnsupported;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC:
    case CUBLAS_COMPUTE_64F_EMULATED_FIXEDPOINT:
      return a == CUDA_R_64F && c == CUDA_R_64F ? CUDA_R_64F : kUnsupported;
    default:
      return kUnsupported;  // 32I and anything unknown
  }
}

double read_scalar(const void* host_scalar, cudaDataType scale_type) {
  switch (scale_type) {
    case CUDA_R_64F:
      return *static_cast<const double*>(host_scalar);
    case CUDA_R_16F:
      return F16::decode(*static_cast<const uint16_t*>(host_scalar));
    default:
      return *static_cast<const float*>(host_scalar);
  }
}

bool is_known_algo(cublasGemmAlgo_t algo) {
  const int value = algo;
  return value == CUBLAS_GEMM_DEFAULT || (value >= CUBLAS_GEMM_ALGO0 && value <= CUBLAS_GEMM_ALGO23) ||
         (value >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && value <= CUBLAS_GEMM_ALGO15_TENSOR_OP) ||
         value == CUBLAS_GEMM_AUTOTUNE;
}

bool is_operation(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

// ------------------------------------------------------------------------------------------------
// Matrix geometry. A column-major matrix with `rows` x `cols` used elements and leading dimension `ld`,
// repeated `batch` times `stride` elements apart.

struct StridedMatrices {
  int64_t rows, cols, ld, stride, batch;

  // Elements from the start of one matrix to one past its last used element.
  int64_t span() const { return rows == 0 || cols == 0 ? 0 : (cols - 1) * ld + rows; }
};

// True when every used element of every matrix of `m` lies in the device allocation `base` points into,
// all on `device`.
bool is_on_device(const void* base, const StridedMatrices& m, size_t element_bytes, int device) {
  if (m.span() == 0 || m.batch == 0) return true;
  if (base == nullptr) return false;
  for (int64_t b = 0; b < m.batch; ++b) {
    const auto* first = static_cast<const char*>(base) + b * m.stride * int64_t(element_bytes);
    if (device_of(first, size_t(m.span()) * element_bytes) != device) return false;
  }
  return true;
}

// True when no two used elements of the batch of output matrices share an address (parallel writes to
// one address would race on a GPU, so the emulation refuses them rather than pick a winner).
bool outputs_are_disjoint(const StridedMatrices& c) {
  if (c.batch <= 1 || c.span() == 0) return true;
  if (std::llabs(c.stride) >= c.span()) return true;  // whole matrices apart: the usual case
  // Interleaved batches (|stride| smaller than a matrix): mark every element once.
  const int64_t first = std::min<int64_t>(0, (c.batch - 1) * c.stride);
  const int64_t last = std::max<int64_t>(0, (c.batch - 1) * c.stride) + c.span();
  std::vector<bool> written(size_t(last - first), false);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t j = 0; j < c.cols; ++j)
      for (int64_t i = 0; i < c.rows; ++i) {
        const auto offset = size_t(b * c.stride + j * c.ld + i - first);
        if (written[offset]) return false;
        written[offset] = true;
      }
  return true;
}

// Copies op(X) of one batch entry, an `rows` x `depth` matrix, into a dense row-major double array, so
// each dot product of the GEMM runs over contiguous memory. `transposed` says X is stored depth x rows.
template <typename Tag>
void load_operand(const void* base, int64_t ld, bool transposed, int64_t rows, int64_t depth,
                  std::vector<double>& dense) {
  const auto* x = static_cast<const typename Tag::stored*>(base);
  dense.resize(size_t(rows * depth));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t l = 0; l < depth; ++l)
      dense[size_t(i * depth + l)] = Tag::decode(transposed ? x[l + i * ld] : x[i + l * ld]);
}

struct GemmProblem {
  bool a_transposed, b_transposed;
  int64_t m, n, k;
  double alpha, beta;
  const void* a;
  int64_t lda, stride_a;
  const void* b;
  int64_t ldb, stride_b;
  void* c;
  int64_t ldc, stride_c;
  int64_t batch;
};

template <typename InputTag, typename OutputTag>
void run_gemm(const GemmProblem& p) {
  using InputStored = typename InputTag::stored;
  using OutputStored = typename OutputTag::stored;
  std::vector<double> op_a;  // m x k, row i = row i of op(A)
  std::vector<double> op_b;  // n x k, row j = column j of op(B)
  for (int64_t batch = 0; batch < p.batch; ++batch) {
    auto* c = static_cast<OutputStored*>(p.c) + batch * p.stride_c;
    if (p.k > 0) {
      // op(A)[i, l] is A[i + l*lda] untransposed, A[l + i*lda] transposed; op(B)[l, j] likewise, so
      // column j of op(B) is row j of B^T.
      load_operand<InputTag>(static_cast<const InputStored*>(p.a) + batch * p.stride_a, p.lda, p.a_transposed,
                             p.m, p.k, op_a);
      load_operand<InputTag>(static_cast<const InputStored*>(p.b) + batch * p.stride_b, p.ldb,
                             !p.b_transposed, p.n, p.k, op_b);
    }
    for (int64_t j = 0; j < p.n; ++j) {
      const double* b_column = op_b.data() + j * p.k;
      for (int64_t i = 0; i < p.m; ++i) {
        const double* a_row = op_a.data() + i * p.k;
        double dot = 0;
        for (int64_t l = 0; l < p.k; ++l) dot += a_row[l] * b_column[l];
        OutputStored& out = c[i + j * p.ldc];
        double result = p.alpha * dot;
        if (p.beta != 0) result += p.beta * OutputTag::decode(out);  // beta == 0: C is not read
        out = OutputTag::encode(result);
      }
    }
  }
}

struct StatusText {
  cublasStatus_t status;
  const char* name;
  const char* description;
};

constexpr StatusText kStatusTexts[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "the operation completed successfully"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED",
     "the cuBLAS library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "resource allocation failed inside cuBLAS"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE",
     "an unsupported value or parameter was passed to the function"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH",
     "the function requires a feature absent from the device architecture"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal cuBLAS operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED",
     "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR",
     "the functionality requested requires some license"},
};

constexpr StatusText kUnknownStatus = {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_UNKNOWN",
                                       "unknown cuBLAS status"};

const StatusText& text_of(cublasStatus_t status) {
  for (const StatusText& text : kStatusTexts)
    if (text.status == status) return text;
  return kUnknownStatus;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Helper functions

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  try {
    cublasContext* created = live<cublasContext>().create();
    created->device = resin::cuda_emulation::current_device();
    *handle = created;
  } catch (const std::bad_alloc&) {
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (handle == nullptr || !live<cublasContext>().destroy(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (handle == nullptr || !live<cublasContext>().contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = streamId;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* streamId) {
  if (handle == nullptr || !live<cublasContext>().contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (streamId == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *streamId = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr || !live<cublasContext>().contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  // One base mode, optionally OR-ed with the DISALLOW_REDUCED_PRECISION_REDUCTION flag.
  const int base = int(mode) & ~int(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  switch (base) {
    case CUBLAS_DEFAULT_MATH:
    case CUBLAS_TENSOR_OP_MATH:
    case CUBLAS_PEDANTIC_MATH:
    case CUBLAS_TF32_TENSOR_OP_MATH:
    case CUBLAS_FP32_EMULATED_BF16X9_MATH:
    case CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH:
      handle->math_mode = mode;
      return CUBLAS_STATUS_SUCCESS;
    default:
      return CUBLAS_STATUS_INVALID_VALUE;
  }
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (handle == nullptr || !live<cublasContext>().contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math_mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) { return text_of(status).name; }

const char* cublasGetStatusString(cublasStatus_t status) { return text_of(status).description; }

// ------------------------------------------------------------------------------------------------
// GEMM: C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b < batchCount, column-major, where
// X[b] starts strideX elements after X[b-1].

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                          const void* A, cudaDataType Atype, int lda, long long int strideA,
                                          const void* B, cudaDataType Btype, int ldb, long long int strideB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  if (handle == nullptr || !live<cublasContext>().contains(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;

  // Argument rules of the cuBLAS documentation (cublasGemmEx / cublas<t>gemmStridedBatched).
  if (!is_operation(transa) || !is_operation(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool a_transposed = transa != CUBLAS_OP_N;  // real types: conjugate transpose == transpose
  const bool b_transposed = transb != CUBLAS_OP_N;
  const int a_stored_rows = a_transposed ? k : m;
  const int b_stored_rows = b_transposed ? n : k;
  if (lda < std::max(1, a_stored_rows) || ldb < std::max(1, b_stored_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (alpha == nullptr || beta == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  const cudaDataType scale_type = scale_type_of(computeType, Atype, Btype, Ctype);
  if (scale_type == kUnsupported || !is_known_algo(algo)) return CUBLAS_STATUS_NOT_SUPPORTED;

  const StridedMatrices a_matrices{a_stored_rows, a_transposed ? m : k, lda, strideA, batchCount};
  const StridedMatrices b_matrices{b_stored_rows, b_transposed ? k : n, ldb, strideB, batchCount};
  const StridedMatrices c_matrices{m, n, ldc, strideC, batchCount};
  if (!is_on_device(A, a_matrices, element_size(Atype), handle->device) ||
      !is_on_device(B, b_matrices, element_size(Btype), handle->device) ||
      !is_on_device(C, c_matrices, element_size(Ctype), handle->device) || !outputs_are_disjoint(c_matrices))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;  // nothing to compute

  const GemmProblem problem{.a_transposed = a_transposed,
                            .b_transposed = b_transposed,
                            .m = m,
                            .n = n,
                            .k = k,
                            .alpha = read_scalar(alpha, scale_type),
                            .beta = read_scalar(beta, scale_type),
                            .a = resin::cuda_emulation::host_view(A),
                            .lda = lda,
                            .stride_a = strideA,
                            .b = resin::cuda_emulation::host_view(B),
                            .ldb = ldb,
                            .stride_b = strideB,
                            .c = resin::cuda_emulation::host_view(C),
                            .ldc = ldc,
                            .stride_c = strideC,
                            .batch = batchCount};
  try {
    with_storage(Atype, [&](auto input_tag) {
      with_storage(Ctype,
                   [&](auto output_tag) { run_gemm<decltype(input_tag), decltype(output_tag)>(problem); });
    });
  } catch (const std::bad_alloc&) {
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}
