// Test helpers: run tests/optim/torch_oracle.py once (one /usr/bin/python3 process per test file)
// and exchange values as hex floats, so nothing is rounded in transit.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "resin/resin.h"

namespace resin::optim::testing {

inline std::string hex(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

inline std::string hex_list(const std::vector<double>& v) {
  std::string s;
  for (double x : v) {
    s += ' ';
    s += hex(x);  // (not `" " + hex(x)`: GCC 12 raises a false -Wrestrict there)
  }
  return s;
}

// "NDIM DIMS..." as the oracle reads shapes.
inline std::string shape_tokens(const Shape& s) {
  std::string out = std::to_string(s.size());
  for (auto d : s) {
    out += ' ';
    out += std::to_string(d);
  }
  return out;
}

struct OracleRun {
  bool ok = false;
  std::string error;                           // why !ok, for the test failure message
  std::vector<std::vector<std::string>> rows;  // output lines split on whitespace
};

// Writes `input` to a file, runs torch_oracle.py `mode` on it and splits its stdout into rows.
inline OracleRun run_oracle(const std::string& mode, const std::string& input) {
  OracleRun r;
  const std::string dir = RESIN_BINARY_DIR;
  // Unique per process: ctest may run several test processes of this binary at once.
  const std::string in_path = dir + "/optim_oracle_" + mode + "_" + std::to_string(getpid()) + ".in";
  {
    std::ofstream f(in_path);
    f << input;
    if (!f) {
      r.error = "cannot write " + in_path;
      return r;
    }
  }
  const std::string cmd = std::string("/usr/bin/python3 ") + RESIN_SOURCE_DIR + "/tests/optim/torch_oracle.py " +
                          mode + " " + in_path;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) {
    r.error = "cannot start " + cmd;
    return r;
  }
  std::string out;
  std::array<char, 1 << 16> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  std::remove(in_path.c_str());
  if (out.find("TORCH_IMPORT_FAILED") != std::string::npos) {
    r.error = "PyTorch oracle unavailable (" + out + "): run scripts/install-deps.sh to install python3-torch";
    return r;
  }
  if (status != 0) {
    r.error = "oracle failed (status " + std::to_string(status) + "): " + cmd + "\n" + out.substr(0, 2000);
    return r;
  }
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::vector<std::string> tok;
    std::string t;
    while (ls >> t) tok.push_back(t);
    if (!tok.empty()) r.rows.push_back(std::move(tok));
  }
  r.ok = true;
  return r;
}

inline double parse_hex(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

inline std::vector<double> parse_values(const std::vector<std::string>& tok, size_t from) {
  std::vector<double> v;
  for (size_t i = from; i < tok.size(); ++i) v.push_back(parse_hex(tok[i]));
  return v;
}

// Bit-for-bit equality (NaNs equal to NaNs); reports the first mismatch.
inline ::testing::AssertionResult bits_equal(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same = got[i] == want[i] ? std::signbit(got[i]) == std::signbit(want[i])
                                        : (std::isnan(got[i]) && std::isnan(want[i]));
    if (!same)
      return ::testing::AssertionFailure() << "element " << i << ": got " << hex(got[i]) << " (" << got[i]
                                           << "), torch " << hex(want[i]) << " (" << want[i] << ")";
  }
  return ::testing::AssertionSuccess();
}

// |got - want| <= rel * |want| elementwise (NaNs equal to NaNs); reports the worst element.
inline ::testing::AssertionResult rel_close(const std::vector<double>& got, const std::vector<double>& want,
                                            double rel) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) && std::isnan(want[i])) continue;
    if (got[i] == want[i]) continue;
    if (!(std::abs(got[i] - want[i]) <= rel * std::abs(want[i])))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", torch " << want[i]
                                           << " (relative error " << std::abs(got[i] - want[i]) / std::abs(want[i])
                                           << " > " << rel << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace resin::optim::testing
