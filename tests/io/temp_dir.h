// A fresh temporary directory for a test, removed with everything in it at scope exit.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "resin/core/error.h"

namespace resin::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "resin-test-XXXXXX").string();
    RESIN_CHECK(::mkdtemp(tmpl.data()) != nullptr, "TempDir: mkdtemp failed for ", tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace resin::testing
