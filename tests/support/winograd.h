// Whether oneDNN runs its Winograd convolutions here (the producers of packed activations,
// tensor/packing.h): they need AVX-512 (avx512_core), and ONEDNN_MAX_CPU_ISA may cap the ISA lower.
// Tests of packing skip without them rather than fail.
#pragma once
#include <dnnl.hpp>

namespace resin::test {

inline bool onednn_has_winograd() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return (isa & need) == need;
}

}  // namespace resin::test
