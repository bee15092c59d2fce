#include "resin/tensor/storage.h"
#include "resin/tensor/storage_cache.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
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

// The block cache (storage_cache.h). Why: glibc serves big blocks with mmap, so every training step
// would unmap its activations and fault fresh zeroed pages back in (measured: ~20% of a ResNet-20
// step's CPU time was page faults in the kernel).
constexpr size_t kCacheMin = size_t{256} << 10;
constexpr size_t kCacheMax = size_t{2} << 30;

struct BlockCache {
  std::mutex mu;
  std::multimap<size_t, void*> free;  // capacity -> block
  size_t bytes = 0;

  void* take(size_t want) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = free.lower_bound(want);
    if (it == free.end() || it->first > want + want / 8) return nullptr;
    void* p = it->second;
    bytes -= it->first;
    free.erase(it);
    return p;
  }
  bool give(void* p, size_t cap) {
    std::lock_guard<std::mutex> lock(mu);
    if (bytes + cap > kCacheMax) return false;
    free.emplace(cap, p);
    bytes += cap;
    return true;
  }
  void trim() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [cap, p] : free) std::free(p);
    free.clear();
    bytes = 0;
  }
};

BlockCache& block_cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: storages may die during static teardown
  return *c;
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
  // Rounding up below must not wrap: no machine has this much memory anyway.
  if (nbytes > SIZE_MAX / 2) throw std::bad_alloc();
  const size_t rounded = ((nbytes + 63) / 64) * 64;
  const bool cacheable = rounded >= kCacheMin;
  // Capacity of the block actually held (a cached block may be up to 1/8 larger than asked for).
  size_t cap = rounded;
  void* p = nullptr;
  if (cacheable) {
    const size_t want = (rounded + 4095) / 4096 * 4096;
    p = block_cache().take(want);
    if (!p) p = std::aligned_alloc(64, want);
    cap = want;  // blocks carry no header: a reused block reports the requested capacity class
  } else if (rounded) {
    p = std::aligned_alloc(64, rounded);
  }
  if (rounded && !p) throw std::bad_alloc();
  note_alloc(static_cast<int64_t>(rounded));
  s->data = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [rounded, cap, cacheable](uint8_t* q) {
    g_current.fetch_sub(static_cast<int64_t>(rounded));
    if (!cacheable || !block_cache().give(q, cap)) std::free(q);
  });
  return s;
}

AllocatorStats allocator_stats() { return {g_current.load(), g_peak.load(), g_count.load()}; }
void reset_peak_bytes() { g_peak.store(g_current.load()); }
void trim_storage_cache() { block_cache().trim(); }
int64_t storage_cache_bytes() {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return static_cast<int64_t>(c.bytes);
}

}  // namespace resin
