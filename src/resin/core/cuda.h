// The CUDA runtime as the lower layers see it: device discovery, raw device memory and copies.
// Always declared; implemented by backend/cuda/ when built with RESIN_WITH_CUDA and by stubs
// (core/cuda_stub.cpp) otherwise, where built() is false, device_count() is 0 and everything that
// needs a device throws "resin was built without CUDA".
//
// Streams: resin runs all work of a device on one stream of its own. Kernel launches and copies
// are asynchronous with respect to the host; anything that reads device data on the host (copies to
// the CPU, Tensor::item(), to_vector()) waits for that stream first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "resin/core/device.h"

namespace resin::cuda {

bool built();                 // compiled with RESIN_WITH_CUDA
int device_count();           // 0 when not built, no driver, or no GPU
bool is_available();          // device_count() > 0
// Throws resin::Error unless `d` can hold tensors: "cuda:0 is not available: resin was built without
// CUDA ...", "cuda:0 is not available: no CUDA device ...", or "cuda:3 does not exist (2 CUDA
// devices)". A CPU device always passes.
void check_device(Device d);
// parse_device(name), then check_device: the device a command-line --device names, or a clear error.
Device usable_device(const std::string& name);
// The compute capability of a CUDA device as major·10 + minor (90 for an H100/H200, 80 for an A100);
// 0 for a CPU device, or one that does not exist.
int compute_capability(Device d);
// Waits for all work queued on the device's stream (-1: every initialised device).
void synchronize(int device = -1);
// Makes `stream` (a cudaStream_t of `device`) wait, on the GPU, for the work queued so far on resin's
// stream of that device; the host does not wait. For libraries with streams of their own (NCCL).
void order_after_device_work(void* stream, int device);
// The other way: resin's stream of `device` waits, on the GPU, for `event` (a cudaEvent_t recorded
// on another stream of that device).
void order_device_work_after(void* event, int device);

// The caching allocator's counters for one device (see backend/cuda/allocator.h).
struct MemoryStats {
  int64_t allocated_bytes = 0;       // held by live tensors (rounded block sizes)
  int64_t peak_allocated_bytes = 0;  // since start or reset_peak_memory()
  int64_t reserved_bytes = 0;        // allocated + cached free blocks (what cudaMalloc holds)
  int64_t device_allocations = 0;    // cudaMalloc calls
  int64_t cache_hits = 0;            // allocations served from the cache
};
MemoryStats memory_stats(int device = 0);
void reset_peak_memory(int device = 0);
void empty_cache();  // returns every cached free block to the driver

namespace raw {
// nbytes of device memory from the caching allocator; the deleter returns the block to the cache.
std::shared_ptr<uint8_t> allocate(size_t nbytes, int device);
// Copies nbytes between any two devices (either may be the CPU). A copy to the CPU returns when
// the data has arrived; a copy from the CPU returns once the host buffer may be reused.
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
// Writes `count` copies of the elem_size-byte pattern at `elem` (1, 2, 4 or 8 bytes) to dst.
void fill(void* dst, int device, size_t count, const void* elem, size_t elem_size);
}  // namespace raw

}  // namespace resin::cuda
