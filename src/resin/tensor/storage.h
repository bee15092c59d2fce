// A reference-counted block of device memory. Views share one Storage.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "resin/core/device.h"
#include "resin/core/shape.h"

namespace resin {

// A storage whose bytes are in oneDNN's blocked nChw16c order instead of the strided order of the
// tensor that covers it (tensor/packing.h says when and why): the tensor's shape and strides.
struct Packing {
  Shape shape;
  Strides plain;
};

struct Storage {
  std::shared_ptr<uint8_t> data;  // 64-byte aligned (CPU); deleter returns it to the allocator
  size_t nbytes = 0;
  Device device;
  // Packed bytes (tensor/packing.h): `packed` is set after `packing`, and cleared after the bytes are
  // strided again, under `mu`; threads that read the same storage at once (the reference backend's
  // parallel loops) unpack it once, the others wait for it.
  std::atomic<bool> packed{false};
  std::unique_ptr<Packing> packing;
  std::mutex mu;

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::cpu());
};

// Host allocator counters, for memory tests and benchmarks (CUDA memory: cuda::memory_stats()).
struct AllocatorStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;
};
AllocatorStats allocator_stats();
// Restores a packed storage's strided bytes in place and clears its packing (tensor/packing.cpp).
void unpack_storage(Storage& s);
void reset_peak_bytes();

}  // namespace resin
