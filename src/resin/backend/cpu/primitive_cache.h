// The primitive cache of the oneDNN kernels: maps a Key (op tag, every operand's dtype/shape/strides,
// op attributes and prop_kind) to an op-specific entry (primitive + the descriptors and reorders it
// needs). LRU with a fixed capacity (kCacheCapacity); a miss builds the entry outside the lock (two
// threads may both build it; the second insert wins). An entry may be null: oneDNN rejected that
// configuration, and the caller falls back to the reference loops without asking oneDNN again.
// Counters: CpuBackend::cache_stats().
#pragma once
#include <cstdint>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>

#include "resin/tensor/tensor.h"

namespace resin::backend::onednn {

inline constexpr size_t kCacheCapacity = 4096;

class Key {
 public:
  explicit Key(const char* op) : s_(op) { s_.push_back('\0'); }
  Key& add(int64_t v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Key& add(double v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Key& add(bool v) { return add(static_cast<int64_t>(v)); }
  Key& add(int v) { return add(static_cast<int64_t>(v)); }
  // An operand: whether it is defined, its dtype, shape and strides (not its address).
  Key& add(const Tensor& t);
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

namespace detail {
std::optional<std::shared_ptr<void>> cache_lookup(const std::string& key);  // counts a hit or miss
void cache_insert(const std::string& key, std::shared_ptr<void> entry);
void count_rejected();
void count_executed();
void count_native();
void count_bf16();
}  // namespace detail

// The entry for `key`, built by make() -> std::shared_ptr<T> on a miss. A dnnl::error thrown by
// make() (no implementation for this configuration) caches and returns null.
template <class T, class F>
std::shared_ptr<T> cached(const Key& key, F&& make) {
  if (auto hit = detail::cache_lookup(key.str())) {
    if (!*hit) detail::count_rejected();
    return std::static_pointer_cast<T>(*hit);
  }
  std::shared_ptr<T> entry;
  try {
    entry = make();
  } catch (const dnnl::error&) {
    entry = nullptr;
  }
  if (!entry) detail::count_rejected();
  detail::cache_insert(key.str(), entry);
  return entry;
}

}  // namespace resin::backend::onednn
