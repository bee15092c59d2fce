#include "resin/core/autocast.h"

#include "resin/core/error.h"

namespace resin {

namespace {
thread_local DType t_autocast = DType::f32;
}

DType autocast_dtype() { return t_autocast; }

void set_autocast_dtype(DType t) {
  RESIN_CHECK(t == DType::f32 || t == DType::bf16 || t == DType::f16,
              "autocast: expected f32 (off), bf16 or f16, got ", dtype_name(t));
  t_autocast = t;
}

}  // namespace resin
