#include "resin/ops/profile.h"

namespace resin {
namespace {
thread_local MacCounter* t_active = nullptr;
}
MacCounter::MacCounter() : prev_(t_active) { t_active = this; }
MacCounter::~MacCounter() { t_active = prev_; }
void MacCounter::add(int64_t macs) {
  if (t_active) t_active->macs_ += macs;
}
}  // namespace resin
