#include "parity_cases.h"

#include <cstdio>

#include "resin/io/json.h"

namespace resin::parity {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::channels_last: return "channels_last";
    case Layout::transposed: return "transposed";
    case Layout::strided: return "strided";
  }
  return "?";
}

void Attrs::key(const std::string& k) {
  if (!body_.empty()) body_ += ", ";
  body_ += io::json_quote(k) + ": ";
}

Attrs& Attrs::num(const std::string& k, double v) {
  key(k);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  body_ += buf;
  return *this;
}

Attrs& Attrs::integer(const std::string& k, int64_t v) {
  key(k);
  body_ += std::to_string(v);
  return *this;
}

Attrs& Attrs::ints(const std::string& k, const std::vector<int64_t>& v) {
  key(k);
  body_ += "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) body_ += ", ";
    body_ += std::to_string(v[i]);
  }
  body_ += "]";
  return *this;
}

Attrs& Attrs::boolean(const std::string& k, bool v) {
  key(k);
  body_ += v ? "true" : "false";
  return *this;
}

Attrs& Attrs::str(const std::string& k, const std::string& v) {
  key(k);
  body_ += io::json_quote(v);
  return *this;
}

Tensor Data::randn(const Shape& s, DType t, double scale) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (double& x : v) x = scale * gen_.normal();
  return from_vector(v, s, {.dtype = t});
}

Tensor Data::uniform(const Shape& s, double lo, double hi, DType t) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (double& x : v) x = lo + (hi - lo) * gen_.uniform();
  return from_vector(v, s, {.dtype = t});
}

Tensor Data::labels(const Shape& s, int64_t classes) {
  std::vector<int64_t> v(static_cast<size_t>(s.numel()));
  for (int64_t& x : v) x = static_cast<int64_t>(gen_.below(static_cast<uint64_t>(classes)));
  return from_data(v, s);
}

Tensor Data::values(const std::vector<double>& v, const Shape& s, DType t) { return from_vector(v, s, {.dtype = t}); }

Tensor cotangent(const Shape& s, int64_t k, DType t) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<double>((static_cast<int64_t>(i) * 7919 + k * 104729) % 2003) / 1001.5 - 1.0;
  return from_vector(v, s, {.dtype = t});
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (DType t : {DType::f64, DType::f32}) {
    add_elementwise_cases(out, t);
    add_reduction_linalg_cases(out, t);
    add_conv_norm_cases(out, t);
    add_pool_cases(out, t);
    add_shape_cases(out, t);
    add_loss_cases(out, t);
  }
  return out;
}

}  // namespace resin::parity
