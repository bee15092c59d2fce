// Where a tensor lives. CPU always; CUDA when built with RESIN_WITH_CUDA.
//
// "cpu:1" is the placement-check device: host memory that counts as a device of its own, so ops
// refuse to mix it with "cpu" tensors exactly as they refuse to mix cpu and cuda ones. A program run
// on cpu:1 proves, on any machine, that it moves every tensor it should (models, batches, buffers,
// optimizer state) — the device plumbing a GPU run needs — while computing on the CPU's kernels.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

namespace resin {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  std::string str() const {
    if (type == DeviceType::cpu) return index == 0 ? "cpu" : "cpu:" + std::to_string(index);
    return "cuda:" + std::to_string(index);
  }
  static Device cpu() { return {}; }
  static Device placement_check() { return {DeviceType::cpu, 1}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
};

// "cpu" (= cpu:0), "cpu:1" (the placement check), "cuda" (= cuda:0) or "cuda:N"; throws resin::Error
// naming the accepted forms otherwise.
// Parsing does not check that the device exists (cuda::check_device does).
Device parse_device(const std::string& s);

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace resin
