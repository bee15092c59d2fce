#include "resin/train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "resin/io/atomic_file.h"
#include "resin/io/json.h"

namespace resin::train {

Accuracy accuracy(const Tensor& logits, const Tensor& labels) {
  RESIN_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
              "accuracy: expected logits [N, C] and labels [N], got ", logits.shape(), " and ", labels.shape());
  const auto v = logits.to_vector();
  const auto y = labels.values<int64_t>();
  const int64_t n = logits.size(0), c = logits.size(1);
  Accuracy a;
  a.count = n;
  for (int64_t i = 0; i < n; ++i) {
    const double target = v[static_cast<size_t>(i * c + y[static_cast<size_t>(i)])];
    int64_t better = 0;  // classes scoring strictly higher than the true class
    for (int64_t j = 0; j < c; ++j)
      if (v[static_cast<size_t>(i * c + j)] > target) ++better;
    if (better == 0) ++a.top1;
    if (better < 5) ++a.top5;
  }
  return a;
}

static void escape(std::ostringstream& os, const std::string& s) {
  os << '"';
  for (char ch : s) {
    switch (ch) {
      case '"': os << "\\\""; break;
      case '\\': os << "\\\\"; break;
      case '\n': os << "\\n"; break;
      case '\t': os << "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          os << buf;
        } else {
          os << ch;
        }
    }
  }
  os << '"';
}

std::string to_json(const JsonRecord& r) {
  std::ostringstream os;
  os.precision(10);
  os << "{";
  for (size_t i = 0; i < r.size(); ++i) {
    if (i) os << ", ";
    escape(os, r[i].first);
    os << ": ";
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string>) escape(os, v);
          else if constexpr (std::is_same_v<V, bool>) os << (v ? "true" : "false");
          else if constexpr (std::is_same_v<V, double>) {
            if (std::isfinite(v)) os << v;
            else os << "null";  // JSON has no NaN/Inf
          } else os << v;
        },
        r[i].second);
  }
  os << "}";
  return os.str();
}

namespace {

// The records of an existing metrics file up to `step`, one per line (see MetricsWriter).
std::string records_up_to(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  const std::string text = io::read_file(path);
  std::string kept;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // a torn last line
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    try {
      const io::JsonValue rec = io::parse_json(line, path);
      const io::JsonValue* s = rec.is_object() ? rec.find("step") : nullptr;
      if (s && s->kind == io::JsonValue::Kind::integer && s->integer <= step) kept += line + "\n";
    } catch (const Error&) {
      // Not a record this writer made; drop it.
    }
  }
  return kept;
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path, int64_t resume_step) : path_(path) {
  const bool append = resume_step >= 0;
  if (append) io::atomic_write_file(path, records_up_to(path, resume_step));
  f_ = std::fopen(path.c_str(), append ? "a" : "w");
  RESIN_CHECK(f_, "cannot open metrics file ", path, ": ", std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(const JsonRecord& r) {
  if (!f_) return;
  const std::string line = to_json(r) + "\n";
  RESIN_CHECK(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0,
              "cannot write metrics file ", path_, ": ", std::strerror(errno));
}

}  // namespace resin::train
