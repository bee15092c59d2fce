// The message of the resin::Error a call throws, or "" when it throws none: for tests that check
// what an error says (EXPECT_THROW checks only its type).
#pragma once
#include <functional>
#include <string>

#include "resin/core/error.h"

namespace resin::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace resin::testing
