// The emulated GPU's own checks (tests/cuda_emulation): what a real GPU refuses, it refuses, so the
// rest of test_gpu_emulated means something. These tests run only in test_gpu_emulated.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <link.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gpu_util.h"
#include "resin/backend/cuda/common.h"

namespace resin::test {
namespace {

#define RESIN_REQUIRE_EMULATED_GPU()                                               \
  do {                                                                             \
    if (!::resin::backend::cuda::emulated_gpu()) GTEST_SKIP() << "real GPU build"; \
  } while (0)

// test_gpu_emulated runs on the emulation and test_gpu never does (they share their objects): a link
// mix-up would otherwise let every test skip, or run half on NVIDIA's libraries.
TEST(EmulatedGpu, EachBinaryRunsOnItsOwnGpu) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").filename().string();
  const bool emulated_binary = exe.find("emulated") != std::string::npos;
  EXPECT_EQ(backend::cuda::emulated_gpu(), emulated_binary) << exe;
  if (!emulated_binary) return;
  EXPECT_TRUE(cuda::is_available());
  std::vector<std::string> nvidia;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        for (const char* lib : {"libcudart", "libcublas", "libcudnn"})
          if (name.find(lib) != std::string::npos)
            static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &nvidia);
  EXPECT_TRUE(nvidia.empty()) << "NVIDIA libraries loaded: " << nvidia.front();
}

TEST(EmulatedGpu, AKernelGivenHostMemoryFailsLikeAnIllegalAddress) {
  RESIN_REQUIRE_EMULATED_GPU();
  auto& ctx = backend::cuda::enter(0);
  std::vector<float> host(16, 0.0f);
  const float one = 1.0f;
  try {
    backend::cuda::launch_fill_dense(ctx.stream, host.data(), 16, &one, 4);
    ADD_FAILURE() << "a kernel wrote to host memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("illegal memory access"), std::string::npos) << e.what();
  }
  EXPECT_EQ(host[0], 0.0f) << "the kernel must not have run";
}

// A kernel told to fill one element more than its block holds: the launch fails, as it would on a GPU
// once the write reaches memory that is not the tensor's.
TEST(EmulatedGpu, AKernelWritingPastItsBlockFails) {
  RESIN_REQUIRE_EMULATED_GPU();
  auto& ctx = backend::cuda::enter(0);
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 64), cudaSuccess);
  const float one = 1.0f;
  backend::cuda::launch_fill_dense(ctx.stream, d, 16, &one, 4);  // exactly the block: fine
  try {
    backend::cuda::launch_fill_dense(ctx.stream, d, 17, &one, 4);
    ADD_FAILURE() << "the write past the block went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("illegal memory access"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cudaFree(d), cudaErrorIllegalAddress) << "cudaFree finds the damage too";
  (void)cudaGetLastError();
}

// Device addresses are not host memory, as on a GPU: host code that dereferences one faults.
TEST(EmulatedGpuDeathTest, HostCodeTouchingDeviceMemoryFaults) {
  RESIN_REQUIRE_EMULATED_GPU();
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 64), cudaSuccess);
  EXPECT_DEATH({ *static_cast<volatile float*>(d) = 1.0f; }, "host code read or wrote device memory");
  EXPECT_EQ(cudaFree(d), cudaSuccess);
}

TEST(EmulatedGpu, CopiesCheckTheirDirectionAndRange) {
  RESIN_REQUIRE_EMULATED_GPU();
  void* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 64), cudaSuccess);
  std::vector<char> host(128);
  EXPECT_EQ(cudaMemcpyAsync(d, host.data(), 64, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  EXPECT_EQ(cudaMemcpyAsync(d, host.data(), 65, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue)
      << "one byte past the allocation";
  EXPECT_EQ(cudaMemcpyAsync(host.data(), d, 64, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue)
      << "direction reversed";
  EXPECT_EQ(cudaMemcpyAsync(host.data(), host.data() + 64, 64, cudaMemcpyDeviceToHost, nullptr),
            cudaErrorInvalidValue)
      << "a host pointer as the device source";
  ASSERT_EQ(cudaFree(d), cudaSuccess);
  EXPECT_EQ(cudaFree(d), cudaErrorInvalidValue) << "double free";
  (void)cudaGetLastError();
}

TEST(EmulatedGpu, CudnnRefusesInconsistentDescriptors) {
  RESIN_REQUIRE_EMULATED_GPU();
  auto& ctx = backend::cuda::enter(0);
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t c;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&x), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateTensorDescriptor(&y), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateFilterDescriptor(&w), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateConvolutionDescriptor(&c), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2, 5, 5),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 3, 2, 3, 3),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(c, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            CUDNN_STATUS_SUCCESS);
  // 5x5 with padding 1 and a 3x3 filter gives 5x5: a 4x4 output is inconsistent.
  ASSERT_EQ(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 4, 4),
            CUDNN_STATUS_SUCCESS);
  void *xp = nullptr, *wp = nullptr, *yp = nullptr;
  ASSERT_EQ(cudaMalloc(&xp, 50 * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&wp, 54 * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&yp, 75 * 4), cudaSuccess);
  const float one = 1.0f, zero = 0.0f;
  EXPECT_NE(cudnnConvolutionForward(ctx.cudnn, &one, x, xp, w, wp, c,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, y, yp),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3, 5, 5),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionForward(ctx.cudnn, &one, x, xp, w, wp, c,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, y, yp),
            CUDNN_STATUS_SUCCESS);
  std::vector<float> host(50);
  EXPECT_NE(cudnnConvolutionForward(ctx.cudnn, &one, x, host.data(), w, wp, c,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, y, yp),
            CUDNN_STATUS_SUCCESS)
      << "x in host memory";
  for (void* p : {xp, wp, yp}) EXPECT_EQ(cudaFree(p), cudaSuccess);
  cudnnDestroyTensorDescriptor(x);
  cudnnDestroyTensorDescriptor(y);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyConvolutionDescriptor(c);
}

}  // namespace
}  // namespace resin::test
