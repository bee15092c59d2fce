// The caching device allocator. cudaMalloc and cudaFree synchronise the device and cost tens of
// microseconds, so freed blocks are kept in free lists keyed by their rounded size and handed out
// again: a training loop that allocates the same shapes every step stops calling cudaMalloc after
// its first step.
//
// Size classes: requests are rounded up to a multiple of 512 bytes below 1 MiB and of 2 MiB above;
// a block is reused only for a request of exactly its class (no splitting, so no fragmentation
// bookkeeping; the rounding bounds the waste). Free lists are per device, and so per stream: each
// device has exactly one stream (common.h), and a block freed on the host while kernels that use
// it are still queued is safe to hand out again because every later use is queued behind them on
// that same stream.
//
// On cudaMalloc failure the cache is emptied (cudaFree of every cached block) and the call
// retried once; a second failure throws resin::Error with the sizes involved.
//
// RESIN_CUDA_NO_CACHING=1 turns the cache off: every tensor gets a cudaMalloc block of exactly its
// size, freed at once, so memory checkers (compute-sanitizer, the emulated GPU's guard zones) see
// each tensor's bounds. Slow; for debugging.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "resin/core/cuda.h"

namespace resin::backend::cuda {

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  void* allocate(size_t nbytes);  // nbytes > 0
  void release(void* p);
  void empty_cache();
  resin::cuda::MemoryStats stats();
  void reset_peak();

  static size_t round_size(size_t nbytes);
  static bool caching();  // false when RESIN_CUDA_NO_CACHING=1

 private:
  void free_cached_locked();

  int device_;
  std::mutex mu_;
  std::unordered_map<void*, size_t> live_;         // pointer -> rounded size
  std::map<size_t, std::vector<void*>> free_;      // rounded size -> cached blocks
  resin::cuda::MemoryStats stats_;
};

// The allocator of one device (created on first use, never destroyed).
CachingAllocator& allocator(int device);

}  // namespace resin::backend::cuda
