// oneDNN kernels for f32 on the CPU. Derives from RefBackend: anything not overridden here (or a
// configuration oneDNN rejects) runs the reference loops.
#pragma once
#include "resin/backend/ref/ref_backend.h"

namespace resin::backend {

class CpuBackend : public RefBackend {
 public:
  const char* name() const override { return "cpu"; }
};

}  // namespace resin::backend
