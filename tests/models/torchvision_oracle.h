// Runs tests/models/torchvision_oracle.py with Debian's /usr/bin/python3 (torch + torchvision).
// A missing torch/torchvision is a test failure that says how to install it, never a skip.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "../io/temp_dir.h"
#include "resin/io/atomic_file.h"

namespace resin::testing {

// Returns "" on success, else a message for the failing assertion.
inline std::string run_torchvision_oracle(const std::string& args, const std::string& log_path) {
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/models/torchvision_oracle.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' " + args + " > '" + log_path + "' 2>&1";
  const int status = std::system(cmd.c_str());
  const int rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (rc == 0) return "";
  std::string log;
  try {
    log = io::read_file(log_path);
  } catch (const Error&) {
  }
  if (rc == 3 || rc == 127)
    return "torch/torchvision are not importable from /usr/bin/python3, so the model-zoo oracle cannot run. "
           "Run scripts/install-deps.sh (it installs python3-torch and python3-torchvision). Output:\n" + log;
  return "torchvision_oracle.py " + args + " failed with exit status " + std::to_string(rc) + ":\n" + log;
}

}  // namespace resin::testing
