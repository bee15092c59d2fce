#include "resin/core/device.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "resin/core/cuda.h"
#include "resin/core/error.h"

namespace resin {

Device parse_device(const std::string& s) {
  if (s == "cpu" || s == "cpu:0") return Device::cpu();
  if (s == "cpu:1") return Device::placement_check();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 8) {
    const std::string n = s.substr(5);
    char* end = nullptr;
    errno = 0;
    const long i = std::strtol(n.c_str(), &end, 10);
    // Digits only: strtol alone would also take "+1", "-0" and " 1".
    const bool digits = std::isdigit(static_cast<unsigned char>(n[0])) != 0;
    if (digits && end && *end == '\0' && errno == 0 && i >= 0) return Device::cuda(static_cast<int>(i));
  }
  RESIN_FAIL("unknown device '", s,
             "' (expected cpu, cuda or cuda:N; cpu:1 checks device placement on the CPU)");
}

namespace cuda {
Device usable_device(const std::string& name) {
  const Device d = parse_device(name);
  check_device(d);
  return d;
}
}  // namespace cuda

}  // namespace resin
