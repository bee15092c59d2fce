#include "resin/backend/cuda/allocator.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "resin/backend/cuda/common.h"

namespace resin::backend::cuda {

size_t CachingAllocator::round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kSmallLimit = size_t{1} << 20;
  if (n <= kSmallLimit) return (n + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

bool CachingAllocator::caching() {
  static const bool on = [] {
    const char* e = std::getenv("RESIN_CUDA_NO_CACHING");
    return !(e && std::strcmp(e, "1") == 0);
  }();
  return on;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = caching() ? round_size(nbytes) : nbytes;
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++stats_.cache_hits;
  } else {
    enter(device_);
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the sticky-free error before retrying
      free_cached_locked();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      if (e == cudaErrorMemoryAllocation)
        throw OutOfMemoryError(str_cat("CUDA out of memory on cuda:", device_, ": tried to allocate ", size,
                                       " bytes with ", stats_.allocated_bytes, " bytes in use by tensors (",
                                       cudaGetErrorString(e), ")"));
      // Any other error is the device's state (a kernel that failed earlier leaves it in every later call).
      RESIN_FAIL("CUDA error on cuda:", device_, " while allocating ", size,
                 " bytes: ", cudaGetErrorString(e));
    }
    ++stats_.device_allocations;
    stats_.reserved_bytes += static_cast<int64_t>(size);
  }
  live_[p] = size;
  stats_.allocated_bytes += static_cast<int64_t>(size);
  if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  return p;
}

void CachingAllocator::release(void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours: nothing to do (never happens for Storage blocks)
  stats_.allocated_bytes -= static_cast<int64_t>(it->second);
  if (caching()) {
    free_[it->second].push_back(p);
  } else {  // cudaFree waits for the work queued on the device, which may still use the block
    enter(device_);
    cudaFree(p);
    stats_.reserved_bytes -= static_cast<int64_t>(it->second);
  }
  live_.erase(it);
}

void CachingAllocator::free_cached_locked() {
  enter(device_);
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      cudaFree(p);
      stats_.reserved_bytes -= static_cast<int64_t>(size);
    }
    blocks.clear();
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  free_cached_locked();
}

resin::cuda::MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

CachingAllocator& allocator(int device) {
  constexpr int kMaxDevices = 64;
  static std::array<CachingAllocator*, kMaxDevices> all{};
  static std::mutex mu;
  RESIN_CHECK(device >= 0 && device < kMaxDevices, "CUDA allocator: bad device index ", device);
  std::lock_guard<std::mutex> lock(mu);
  if (!all[static_cast<size_t>(device)]) all[static_cast<size_t>(device)] = new CachingAllocator(device);
  return *all[static_cast<size_t>(device)];
}

}  // namespace resin::backend::cuda
