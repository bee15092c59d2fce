#include "resin/core/rng.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

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

void Generator::normals(double* out, int64_t n) {
  int64_t i = 0;
  if (n > 0 && has_spare_normal_) out[i++] = normal();
  constexpr int64_t kPairs = 1 << 15;
  std::vector<uint64_t> words;
  while (n - i >= 2) {
    const int64_t pairs = std::min(kPairs, (n - i) / 2);
    const std::mt19937_64 before = engine_;
    words.resize(static_cast<size_t>(2 * pairs));
    bool rejected = false;  // a u1 of 0 (odds 2^-53 a pair) makes normal() draw again: redo it so
    for (uint64_t& w : words) w = next_u64();
    for (int64_t k = 0; k < pairs; ++k) rejected |= (words[static_cast<size_t>(2 * k)] >> 11) == 0;
    if (rejected) {
      engine_ = before;
      for (int64_t k = 0; k < 2 * pairs; ++k) out[i + k] = normal();
      i += 2 * pairs;
      continue;
    }
    double* o = out + i;
#pragma omp parallel for if (pairs >= 4096)
    for (int64_t k = 0; k < pairs; ++k) {
      const double u1 = static_cast<double>(words[static_cast<size_t>(2 * k)] >> 11) * 0x1.0p-53;
      const double u2 = static_cast<double>(words[static_cast<size_t>(2 * k + 1)] >> 11) * 0x1.0p-53;
      const double r = std::sqrt(-2.0 * std::log(u1));
      o[2 * k] = r * std::cos(2.0 * M_PI * u2);
      o[2 * k + 1] = r * std::sin(2.0 * M_PI * u2);
    }
    spare_normal_ = o[2 * pairs - 1];  // spent, as normal() leaves it (state() shows it)
    i += 2 * pairs;
  }
  if (i < n) out[i] = normal();  // the odd one out: its partner stays the spare, as normal() leaves it
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
