#include "resin/core/shape.h"

#include <algorithm>

#include "resin/core/error.h"

namespace resin {

std::string Shape::str() const {
  std::string s = "[";
  for (size_t i = 0; i < d_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + "]";
}

Strides contiguous_strides(const Shape& s) {
  Strides st(std::vector<int64_t>(s.size(), 1));
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    // Zero dims count as 1 here, so a shape with 0 elements can still overflow; refuse it.
    RESIN_CHECK(!__builtin_mul_overflow(acc, std::max<int64_t>(s[i], 1), &acc), "shape ", s,
                " is too large: its strides overflow int64");
  }
  return st;
}

Strides channels_last_strides(const Shape& s) {
  RESIN_CHECK(s.size() == 4, "channels_last: expected a 4-D NCHW shape, got ", s);
  const int64_t c = s[1], h = s[2], w = s[3];
  return Strides{h * w * c, 1, w * c, c};
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(std::vector<int64_t>(n, 1));
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    RESIN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
                " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  RESIN_CHECK(dim >= lo && dim <= hi, op, ": dim ", dim, " out of range for a tensor with ", ndim,
              " dims (expected ", lo, "..", hi, ")");
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

}  // namespace resin
