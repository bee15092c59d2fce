// Where a tensor lives. CPU always; CUDA when built with RESIN_WITH_CUDA.
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
  std::string str() const { return type == DeviceType::cpu ? "cpu" : "cuda:" + std::to_string(index); }
  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
};

// "cpu", "cuda" (= cuda:0) or "cuda:N"; throws resin::Error naming the accepted forms otherwise.
// Parsing does not check that the device exists (cuda::check_device does).
Device parse_device(const std::string& s);

inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace resin
