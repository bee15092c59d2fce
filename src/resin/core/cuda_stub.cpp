// The CUDA entry points of a build without RESIN_WITH_CUDA: no devices, and a clear error for
// anything that needs one. The real implementation is backend/cuda/runtime.cpp.
#ifndef RESIN_WITH_CUDA
#include <cstring>

#include "resin/core/cuda.h"
#include "resin/core/error.h"

namespace resin::cuda {

namespace {
[[noreturn]] void no_cuda() { RESIN_FAIL("resin was built without CUDA (configure with -DRESIN_WITH_CUDA=ON)"); }
}  // namespace

bool built() { return false; }
int device_count() { return 0; }
bool is_available() { return false; }
void check_device(Device d) {
  RESIN_CHECK(d.type == DeviceType::cpu, d, " is not available: resin was built without CUDA (configure with ",
              "-DRESIN_WITH_CUDA=ON)");
}
int compute_capability(Device) { return 0; }
void synchronize(int) {}
void order_after_device_work(void*, int) { no_cuda(); }
void order_device_work_after(void*, int) { no_cuda(); }
MemoryStats memory_stats(int) { return {}; }
void reset_peak_memory(int) {}
void empty_cache() {}

namespace raw {
std::shared_ptr<uint8_t> allocate(size_t, int) { no_cuda(); }
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  // Between host devices (cpu and the placement check cpu:1) a copy is a memcpy.
  if (dst_device.type != DeviceType::cpu || src_device.type != DeviceType::cpu) no_cuda();
  if (nbytes > 0) std::memcpy(dst, src, nbytes);
}
void fill(void*, int, size_t, const void*, size_t) { no_cuda(); }
}  // namespace raw

}  // namespace resin::cuda
#endif
