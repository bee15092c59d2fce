// Errors: every failed precondition throws resin::Error with a message that names the op,
// what was expected and what was got.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace resin {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A device allocation that failed for want of memory (callers may retry with less); any other
// failure of the device is a plain Error.
class OutOfMemoryError : public Error {
 public:
  using Error::Error;
};

// Concatenates anything streamable. GCC 12 has no std::format.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace resin

#define RESIN_CHECK(cond, ...)                                   \
  do {                                                           \
    if (!(cond)) throw ::resin::Error(::resin::str_cat(__VA_ARGS__)); \
  } while (0)

#define RESIN_FAIL(...) throw ::resin::Error(::resin::str_cat(__VA_ARGS__))
