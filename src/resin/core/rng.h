// Seedable random numbers. Every random factory, initialiser, dropout mask and shuffle draws from a
// Generator, so a run with the same seed is reproducible bit for bit. The algorithms are written
// out here (not std:: distributions) so the streams do not depend on the standard library.
#pragma once
#include <cstdint>
#include <random>
#include <string>

namespace resin {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed) {
    engine_.seed(seed);
    has_spare_normal_ = false;
  }
  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (caches the second value).
  double normal();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);

  // Full state as text, for checkpoints (exact resume).
  std::string state() const;
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0;
};

// The process-wide default generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace resin
