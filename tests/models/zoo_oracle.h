// Helpers of the model-zoo oracle tests: running tests/models/zoo_oracle.py with Debian's
// /usr/bin/python3 (torch + torchvision; a missing torch is a test failure that says how to install
// it, never a skip), comparing logits, and randomising BN state so that eval-mode BN matters.
#pragma once
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "../io/temp_dir.h"
#include "resin/io/atomic_file.h"
#include "resin/nn/init.h"
#include "resin/nn/layers.h"
#include "resin/nn/rewrite.h"

namespace resin::testing {

// Runs a shell command with stdout and stderr in log_path; returns its exit status (128 + signal
// when killed) and the log.
struct CommandResult {
  int rc;
  std::string log;
};
inline CommandResult run_logged(const std::string& cmd, const std::string& log_path) {
  const int status = std::system((cmd + " > '" + log_path + "' 2>&1").c_str());
  const int rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string log;
  try {
    log = io::read_file(log_path);
  } catch (const Error&) {
  }
  return {rc, log};
}

// Returns "" on success, else a message for the failing assertion.
inline std::string run_zoo_oracle(const std::string& args, const std::string& log_path) {
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/models/zoo_oracle.py";
  const auto [rc, log] = run_logged("/usr/bin/python3 '" + script + "' " + args, log_path);
  if (rc == 0) return "";
  if (rc == 3 || rc == 127)
    return "torch/torchvision are not importable from /usr/bin/python3, so the model-zoo oracle cannot run. "
           "Run scripts/install-deps.sh (it installs python3-torch and python3-torchvision). Output:\n" + log;
  return "zoo_oracle.py " + args + " failed with exit status " + std::to_string(rc) + ":\n" + log;
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

// nn::relative_error (max|a - b| / max|b|, +inf for a NaN), with a failure naming different shapes.
inline double relative_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  return nn::relative_error(a, b);
}

// Random BN statistics and affine parameters, so that eval-mode BN is not the identity and a
// swapped mean/var or gamma/beta would show in the logits.
inline void randomise_batch_norm(nn::Module& m) {
  for (auto& [_, mod] : m.named_modules())
    if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm>(mod)) {
      Tensor mean = bn->running_mean(), var = bn->running_var(), w = bn->weight(), b = bn->bias();
      nn::init::uniform_(mean, -0.5, 0.5);
      nn::init::uniform_(var, 0.5, 1.5);
      nn::init::uniform_(w, 0.5, 1.5);
      nn::init::uniform_(b, -0.2, 0.2);
    }
}

}  // namespace resin::testing
