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
  // Parse into copies so a malformed state leaves this generator untouched.
  std::istringstream is(s);
  std::mt19937_64 engine;
  int spare_flag = -1;
  std::string spare;
  is >> engine >> spare_flag >> spare;
  RESIN_CHECK(!is.fail() && (spare_flag == 0 || spare_flag == 1), "Generator::set_state: malformed generator state");
  is >> std::ws;
  RESIN_CHECK(is.eof(), "Generator::set_state: trailing characters after the generator state");
  char* end = nullptr;
  const double spare_value = std::strtod(spare.c_str(), &end);
  RESIN_CHECK(end && *end == '\0' && std::isfinite(spare_value), "Generator::set_state: malformed spare normal '",
              spare, "'");
  // An all-zero Mersenne Twister state is a fixed point: it would emit zeros forever (and normal()
  // would then never find u1 > 0). A 312-word block of zero outputs can only come from it.
  std::mt19937_64 probe = engine;
  bool all_zero = true;
  for (size_t i = 0; i < std::mt19937_64::state_size && all_zero; ++i) all_zero = probe() == 0;
  RESIN_CHECK(!all_zero, "Generator::set_state: degenerate (all-zero) generator state");
  engine_ = engine;
  has_spare_normal_ = spare_flag == 1;
  spare_normal_ = spare_value;
}

Generator& default_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace resin
