// core/cuda.h on the CUDA runtime, and the per-device contexts of common.h.
#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include "resin/backend/cuda/allocator.h"
#include "resin/backend/cuda/common.h"
#include "resin/core/cuda.h"

namespace resin::backend::cuda {

void check_cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  RESIN_FAIL("CUDA error in ", what, ": ", cudaGetErrorString(e));
}

void check_cublas(cublasStatus_t s, const char* what) {
  RESIN_CHECK(s == CUBLAS_STATUS_SUCCESS, "cuBLAS error in ", what, ": ", cublasGetStatusString(s));
}

void check_cudnn(cudnnStatus_t s, const char* what) {
  RESIN_CHECK(s == CUDNN_STATUS_SUCCESS, "cuDNN error in ", what, ": ", cudnnGetErrorString(s));
}

namespace {
constexpr int kMaxDevices = 64;
std::array<Context*, kMaxDevices> g_contexts{};  // created on first use, never destroyed
std::mutex g_contexts_mu;

// Whether this process has used `device` (created its context); touching an unused GPU would cost a
// CUDA context and library handles (hundreds of MB) for nothing.
bool has_context(int device) {
  std::lock_guard<std::mutex> lock(g_contexts_mu);
  return g_contexts[static_cast<size_t>(device)] != nullptr;
}
}  // namespace

Context& enter(int device) {
  auto& all = g_contexts;
  auto& mu = g_contexts_mu;
  RESIN_CHECK(device >= 0 && device < kMaxDevices, "CUDA: bad device index ", device);
  // Asked of the runtime each time (a cheap host-side query), not remembered: other code (NCCL, a
  // user's) may have made another device current on this thread since.
  int current = -1;
  check_cuda(cudaGetDevice(&current), "cudaGetDevice");
  if (current != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");
  std::lock_guard<std::mutex> lock(mu);
  Context*& c = all[static_cast<size_t>(device)];
  if (!c) {
    auto* ctx = new Context;
    ctx->device = device;
    check_cuda(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cublas(cublasCreate(&ctx->cublas), "cublasCreate");
    check_cublas(cublasSetStream(ctx->cublas, ctx->stream), "cublasSetStream");
    // Default math: f32 GEMMs with CUBLAS_COMPUTE_32F do not use TF32 (matmul.cpp asks for that
    // compute type), so they round like f32 — needed for parity with the CPU.
    check_cublas(cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    check_cudnn(cudnnCreate(&ctx->cudnn), "cudnnCreate");
    check_cudnn(cudnnSetStream(ctx->cudnn, ctx->stream), "cudnnSetStream");
    c = ctx;
  }
  return *c;
}

void check_operands(const char* op, Device dev, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t && t->defined())
      RESIN_CHECK(t->device() == dev, op, ": expected every tensor on ", dev, ", got one on ", t->device());
}

ScalarType scalar_type(DType t) { return static_cast<ScalarType>(static_cast<int>(t)); }

}  // namespace resin::backend::cuda

namespace resin::cuda {

using backend::cuda::check_cuda;
using backend::cuda::enter;
using backend::cuda::has_context;
using backend::cuda::kMaxDevices;

bool built() { return true; }

int device_count() {
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      (void)cudaGetLastError();  // no driver, or no GPU: report none
      return 0;
    }
    return c;
  }();
  return n;
}

bool is_available() { return device_count() > 0; }

void check_device(Device d) {
  if (d.type == DeviceType::cpu) return;
  const int n = device_count();
  RESIN_CHECK(n > 0, d, " is not available: no CUDA device (resin was built with CUDA, but the driver reports no GPU)");
  RESIN_CHECK(d.index >= 0 && d.index < n, d, " does not exist (", n, " CUDA device", n == 1 ? "" : "s", ")");
}

int compute_capability(Device d) {
  if (d.type != DeviceType::cuda || d.index < 0 || d.index >= device_count()) return 0;
  int major = 0, minor = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d.index),
             "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d.index),
             "cudaDeviceGetAttribute");
  return major * 10 + minor;
}

void synchronize(int device) {
  if (device >= 0) {
    check_cuda(cudaStreamSynchronize(enter(device).stream), "cudaStreamSynchronize");
    return;
  }
  for (int d = 0; d < std::min(device_count(), kMaxDevices); ++d)
    if (has_context(d)) check_cuda(cudaStreamSynchronize(enter(d).stream), "cudaStreamSynchronize");
}

void order_after_device_work(void* stream, int device) {
  const cudaStream_t ours = enter(device).stream;
  cudaEvent_t ready = nullptr;
  check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  cudaError_t e = cudaEventRecord(ready, ours);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), ready, 0);
  cudaEventDestroy(ready);  // the wait keeps what it needs
  check_cuda(e, "cudaStreamWaitEvent");
}

void order_device_work_after(void* event, int device) {
  check_cuda(cudaStreamWaitEvent(enter(device).stream, static_cast<cudaEvent_t>(event), 0),
             "cudaStreamWaitEvent");
}

MemoryStats memory_stats(int device) { return backend::cuda::allocator(device).stats(); }
void reset_peak_memory(int device) { backend::cuda::allocator(device).reset_peak(); }
void empty_cache() {
  for (int d = 0; d < std::min(device_count(), kMaxDevices); ++d) {
    if (!has_context(d)) continue;  // nothing was allocated there
    synchronize(d);
    backend::cuda::allocator(d).empty_cache();
  }
}

namespace raw {

std::shared_ptr<uint8_t> allocate(size_t nbytes, int device) {
  if (nbytes == 0) return std::shared_ptr<uint8_t>();
  auto* p = static_cast<uint8_t*>(backend::cuda::allocator(device).allocate(nbytes));
  return std::shared_ptr<uint8_t>(p, [device](uint8_t* q) { backend::cuda::allocator(device).release(q); });
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  const bool dst_cpu = dst_device.type == DeviceType::cpu, src_cpu = src_device.type == DeviceType::cpu;
  if (dst_cpu && src_cpu) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  if (src_cpu) {  // from pageable host memory: returns once the host buffer has been staged
    auto& c = enter(dst_device.index);
    check_cuda(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, c.stream), "copy to the GPU");
    return;
  }
  if (dst_cpu) {
    auto& c = enter(src_device.index);
    check_cuda(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, c.stream), "copy to the CPU");
    check_cuda(cudaStreamSynchronize(c.stream), "copy to the CPU");
    return;
  }
  if (src_device == dst_device) {
    auto& c = enter(dst_device.index);
    check_cuda(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, c.stream), "device copy");
    return;
  }
  // Between two GPUs: the source must be complete, and the destination stream orders later work.
  synchronize(src_device.index);
  auto& c = enter(dst_device.index);
  check_cuda(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, c.stream), "peer copy");
  check_cuda(cudaStreamSynchronize(c.stream), "peer copy");
}

void fill(void* dst, int device, size_t count, const void* elem, size_t elem_size) {
  auto& c = enter(device);
  backend::cuda::launch_fill_dense(c.stream, dst, static_cast<int64_t>(count), elem, static_cast<int>(elem_size));
}

}  // namespace raw
}  // namespace resin::cuda
