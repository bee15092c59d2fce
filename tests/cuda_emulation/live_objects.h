// Live objects of the emulated cuBLAS and cuDNN: a destroyed or made-up handle or descriptor is
// refused instead of being dereferenced.
#pragma once
#include <mutex>
#include <unordered_set>

namespace resin::cuda_emulation {

template <typename Object>
class LiveObjects {
 public:
  Object* create() {
    auto* object = new Object;
    std::lock_guard lock(mutex_);
    live_.insert(object);
    return object;
  }
  bool destroy(Object* object) {
    {
      std::lock_guard lock(mutex_);
      if (live_.erase(object) == 0) return false;
    }
    delete object;
    return true;
  }
  bool contains(const Object* object) {
    std::lock_guard lock(mutex_);
    return live_.count(object) != 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<const Object*> live_;
};

template <typename Object>
LiveObjects<Object>& live() {
  static LiveObjects<Object> objects;
  return objects;
}

}  // namespace resin::cuda_emulation
