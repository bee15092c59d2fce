// Seedable random numbers. Every random factory, initialiser, dropout mask and shuffle draws from a
// Generator, so a run with the same seed is reproducible bit for bit. The algorithms are written
// out here (not std:: distributions) so the streams do not depend on the standard library.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

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
  // out[0..n) = n calls of normal(), bit for bit, leaving the same state; the logarithms and sines
  // run on OpenMP threads (the engine's words are still drawn in order).
  void normals(double* out, int64_t n);
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

// `total` normals of g read one at a time — the values of `total` calls of g.normal() — drawn in
// chunks by Generator::normals, for filling a tensor in order. Exactly `total` values are drawn.
class NormalReader {
 public:
  NormalReader(Generator& g, int64_t total) : g_(g), left_(total) {}
  double next() {
    if (pos_ == buf_.size()) refill();
    return buf_[pos_++];
  }

 private:
  void refill() {
    const int64_t m = left_ < kChunk ? (left_ > 0 ? left_ : 1) : kChunk;  // past `total`: one at a time
    buf_.resize(static_cast<size_t>(m));
    g_.normals(buf_.data(), m);
    left_ -= m;
    pos_ = 0;
  }
  static constexpr int64_t kChunk = 1 << 16;
  Generator& g_;
  int64_t left_;
  std::vector<double> buf_;
  size_t pos_ = 0;
};

// The process-wide default generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace resin
