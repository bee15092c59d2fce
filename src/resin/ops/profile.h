// Counts multiply-accumulates of conv2d and matmul while a MacCounter is alive on this thread
// (used by `resin zoo` to report each model's MACs from one forward pass).
#pragma once
#include <cstdint>

namespace resin {

class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;
  int64_t macs() const { return macs_; }
  // Adds to the innermost live counter, if any.
  static void add(int64_t macs);

 private:
  int64_t macs_ = 0;
  MacCounter* prev_;
};

}  // namespace resin
