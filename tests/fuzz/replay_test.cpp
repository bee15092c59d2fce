// Replays the fuzz corpora through the fuzz targets (fuzz/targets.h) in the ordinary test build and
// in the ASan + UBSan pass: the checked-in seeds, every crash the fuzzers ever found
// (fuzz/regressions/<target>/), and a few hundred seeded mutations of each seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "resin/core/rng.h"
#include "targets.h"

namespace fs = std::filesystem;

namespace resin::fuzz {
namespace {

const fs::path kFuzzDir = fs::path(RESIN_SOURCE_DIR) / "fuzz";

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs a target with std::cout silenced (the cli target's --help inputs print the help text).
bool run(FuzzTarget t, const std::vector<uint8_t>& b) {
  std::cout.setstate(std::ios::badbit);
  const bool accepted = t(b.data(), b.size());
  std::cout.clear();
  return accepted;
}

TEST(FuzzCorpus, EveryTargetHasSeedsAndAcceptsThem) {
  for (const auto& [name, target] : fuzz_targets()) {
    const auto seeds = files_in(kFuzzDir / "corpus" / name);
    EXPECT_FALSE(seeds.empty()) << "no seeds for " << name;
    for (const auto& p : seeds) EXPECT_TRUE(run(target, read_bytes(p))) << name << ": seed rejected: " << p;
  }
}

TEST(FuzzCorpus, CheckedInSeedsAreTheGeneratedOnes) {
  // The names must match what write_seed_corpora makes (the bytes of the checkpoint seeds depend on
  // floating-point kernels, so only acceptance is compared for them).
  const fs::path tmp = fs::temp_directory_path() / ("resin_fuzz_seeds_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  write_seed_corpora(tmp.string());
  for (const auto& [name, target] : fuzz_targets()) {
    std::set<std::string> made, checked_in;
    for (const auto& p : files_in(tmp / name)) {
      made.insert(p.filename().string());
      EXPECT_TRUE(run(target, read_bytes(p))) << name << ": generated seed rejected: " << p.filename();
    }
    for (const auto& p : files_in(kFuzzDir / "corpus" / name)) checked_in.insert(p.filename().string());
    EXPECT_EQ(made, checked_in) << name << ": run scripts/fuzz.sh --seeds to refresh fuzz/corpus";
  }
  fs::remove_all(tmp);
}

TEST(FuzzCorpus, RegressionsStayFixed) {
  // Each file is an input that once crashed a target; replaying it must not crash (a resin::Error
  // or acceptance are both fine).
  for (const auto& [name, target] : fuzz_targets())
    for (const auto& p : files_in(kFuzzDir / "regressions" / name)) {
      SCOPED_TRACE(p.string());
      run(target, read_bytes(p));
    }
}

TEST(FuzzCorpus, SeededMutationsOfEverySeed) {
  Generator g(20261128);
  for (const auto& [name, target] : fuzz_targets()) {
    const int rounds = name == "checkpoint" ? 60 : 250;  // the checkpoint target trains a step
    for (const auto& p : files_in(kFuzzDir / "corpus" / name)) {
      const auto seed = read_bytes(p);
      for (int r = 0; r < rounds; ++r) {
        std::vector<uint8_t> m = seed;
        const uint64_t kind = g.below(3);
        if (kind != 1 && !m.empty())
          for (uint64_t f = 0, n = 1 + g.below(4); f < n; ++f) {
            // Bias towards the first bytes, where headers and lengths live.
            const uint64_t limit = g.below(2) ? std::min<uint64_t>(m.size(), 64) : m.size();
            m[g.below(limit)] ^= static_cast<uint8_t>(1 + g.below(255));
          }
        if (kind != 0) m.resize(g.below(m.size() + 1));
        run(target, m);
      }
    }
  }
}

}  // namespace
}  // namespace resin::fuzz
