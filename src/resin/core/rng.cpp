#include "resin/core/rng.h"

#include <cmath>
#include <sstream>

#include "resin/core/error.h"

namespace resin {

double Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_normal_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_normal_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

uint64_t Generator::below(uint64_t n) {
  RESIN_CHECK(n > 0, "Generator::below: n must be positive");
  // Rejection sampling avoids modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return v % n;
}

std::string Generator::state() const {
  std::ostringstream os;
  os << engine_ << ' ' << has_spare_normal_ << ' ';
  os.precision(17);
  os << std::hexfloat << spare_normal_;
  return os.str();
}

void Generator::set_state(const std::string& s) {
  std::istringstream is(s);
  std::string spare;
  is >> engine_ >> has_spare_normal_ >> spare;
  RESIN_CHECK(!is.fail(), "Generator::set_state: malformed generator state");
  spare_normal_ = std::strtod(spare.c_str(), nullptr);
}

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace resin
