// One libFuzzer binary per target: RESIN_FUZZ_TARGET names the function in targets.h.
#include <cstddef>
#include <cstdint>

#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  resin::fuzz::RESIN_FUZZ_TARGET(data, size);
  return 0;
}
