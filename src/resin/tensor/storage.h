// A reference-counted block of device memory. Views share one Storage.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "resin/core/device.h"

namespace resin {

struct Storage {
  std::shared_ptr<uint8_t> data;  // 64-byte aligned (CPU); deleter returns it to the allocator
  size_t nbytes = 0;
  Device device;

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::cpu());
};

// Host allocator counters, for memory tests and benchmarks (CUDA memory: cuda::memory_stats()).
struct AllocatorStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;
};
AllocatorStats allocator_stats();
void reset_peak_bytes();

}  // namespace resin
