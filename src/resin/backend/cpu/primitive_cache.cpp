// The primitive cache (see primitive_cache.h) and its counters.
#include "resin/backend/cpu/primitive_cache.h"

#include <atomic>
#include <list>
#include <mutex>
#include <unordered_map>

#include "resin/backend/cpu/cpu_backend.h"

namespace resin::backend::onednn {

namespace {

struct Cache {
  std::mutex mu;
  // Most recently used at the front.
  std::list<std::pair<std::string, std::shared_ptr<void>>> lru;
  std::unordered_map<std::string, decltype(lru)::iterator> index;
  int64_t hits = 0, misses = 0;
  std::atomic<int64_t> rejected{0}, executed{0}, native{0}, bf16{0};
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

Key& Key::add(const Tensor& t) {
  if (!t.defined()) return add(int64_t{-1});
  add(static_cast<int64_t>(t.dtype())).add(t.dim());
  for (int64_t d : t.shape()) add(d);
  for (int64_t s : t.strides()) add(s);
  return *this;
}

namespace detail {

std::optional<std::shared_ptr<void>> cache_lookup(const std::string& key) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.index.find(key);
  if (it == c.index.end()) {
    ++c.misses;
    return std::nullopt;
  }
  ++c.hits;
  c.lru.splice(c.lru.begin(), c.lru, it->second);
  return it->second->second;
}

void cache_insert(const std::string& key, std::shared_ptr<void> entry) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto it = c.index.find(key); it != c.index.end()) {  // another thread built it meanwhile
    it->second->second = std::move(entry);
    return;
  }
  c.lru.emplace_front(key, std::move(entry));
  c.index.emplace(key, c.lru.begin());
  while (c.lru.size() > kCacheCapacity) {
    c.index.erase(c.lru.back().first);
    c.lru.pop_back();
  }
}

void count_rejected() { ++cache().rejected; }
void count_executed() { ++cache().executed; }
void count_native() { ++cache().native; }
void count_bf16() { ++cache().bf16; }

}  // namespace detail

}  // namespace resin::backend::onednn

namespace resin::backend {

PrimitiveCacheStats CpuBackend::cache_stats() {
  auto& c = onednn::cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.hits, c.misses, static_cast<int64_t>(c.lru.size()), c.rejected.load(), c.executed.load(),
          c.native.load(), c.bf16.load()};
}

void CpuBackend::clear_cache() {
  auto& c = onednn::cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.lru.clear();
  c.index.clear();
}

}  // namespace resin::backend
