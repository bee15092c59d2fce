#include "resin/tensor/storage.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "resin/core/cuda.h"
#include "resin/core/error.h"

namespace resin {
namespace {
std::atomic<int64_t> g_current{0}, g_peak{0}, g_count{0};

void note_alloc(int64_t n) {
  const int64_t now = g_current.fetch_add(n) + n;
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  g_count.fetch_add(1);
}
}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  s->device = device;
  if (device.type != DeviceType::cpu) {
    // Device memory comes from the CUDA caching allocator and is counted there, not here.
    cuda::check_device(device);
    s->data = cuda::raw::allocate(nbytes, device.index);
    return s;
  }
  const size_t rounded = ((nbytes + 63) / 64) * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  if (rounded && !p) throw std::bad_alloc();
  note_alloc(static_cast<int64_t>(rounded));
  s->data = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [rounded](uint8_t* q) {
    std::free(q);
    g_current.fetch_sub(static_cast<int64_t>(rounded));
  });
  return s;
}

AllocatorStats allocator_stats() { return {g_current.load(), g_peak.load(), g_count.load()}; }
void reset_peak_bytes() { g_peak.store(g_current.load()); }

}  // namespace resin
