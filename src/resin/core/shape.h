// Shape and strides: small vectors of int64 with readable printing.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace resin {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : d_(d) {}
  explicit Shape(std::vector<int64_t> d) : d_(std::move(d)) {}
  template <class It>
  Shape(It b, It e) : d_(b, e) {}

  size_t size() const { return d_.size(); }
  int64_t operator[](size_t i) const { return d_[i]; }
  int64_t& operator[](size_t i) { return d_[i]; }
  int64_t back() const { return d_.back(); }
  auto begin() const { return d_.begin(); }
  auto end() const { return d_.end(); }
  auto begin() { return d_.begin(); }
  auto end() { return d_.end(); }
  void push_back(int64_t v) { d_.push_back(v); }
  void insert(size_t pos, int64_t v) { d_.insert(d_.begin() + static_cast<long>(pos), v); }
  void erase(size_t pos) { d_.erase(d_.begin() + static_cast<long>(pos)); }
  const std::vector<int64_t>& vec() const { return d_; }
  bool empty() const { return d_.empty(); }

  int64_t numel() const {
    int64_t n = 1;
    for (auto v : d_) n *= v;
    return n;
  }
  bool operator==(const Shape& o) const { return d_ == o.d_; }
  bool operator!=(const Shape& o) const { return d_ != o.d_; }
  std::string str() const;

 private:
  std::vector<int64_t> d_;
};

using Strides = Shape;

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

// Contiguous (row-major) strides for a shape.
Strides contiguous_strides(const Shape& s);
// NHWC strides for a logical NCHW shape (channels-last physical layout).
Strides channels_last_strides(const Shape& s);
// Broadcast two shapes by numpy rules; throws naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Wraps a possibly negative dim into [0, ndim); throws naming `op` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace resin
