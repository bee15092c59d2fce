// Running metrics (loss, top-1, top-5) and the JSONL metrics file: one JSON object per line,
// flushed per record so `tail -f` and plotting scripts see progress live.
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::train {

struct Accuracy {
  int64_t top1 = 0, top5 = 0, count = 0;
};
// Counts correct top-1/top-5 predictions of logits [N, C] against labels [N] (i64).
Accuracy accuracy(const Tensor& logits, const Tensor& labels);

class RunningMeter {
 public:
  void add(double loss_sum, const Accuracy& a) {
    loss_sum_ += loss_sum;
    acc_.top1 += a.top1;
    acc_.top5 += a.top5;
    acc_.count += a.count;
  }
  double loss() const { return acc_.count ? loss_sum_ / static_cast<double>(acc_.count) : 0.0; }
  double top1() const { return acc_.count ? 100.0 * static_cast<double>(acc_.top1) / static_cast<double>(acc_.count) : 0.0; }
  double top5() const { return acc_.count ? 100.0 * static_cast<double>(acc_.top5) / static_cast<double>(acc_.count) : 0.0; }
  int64_t count() const { return acc_.count; }
  double loss_sum() const { return loss_sum_; }
  const Accuracy& counts() const { return acc_; }

 private:
  double loss_sum_ = 0;
  Accuracy acc_;
};

using JsonValue = std::variant<int64_t, double, std::string, bool>;
using JsonRecord = std::vector<std::pair<std::string, JsonValue>>;
std::string to_json(const JsonRecord& r);

// Appends records to a JSONL file, flushed per record. A fresh run (resume_step < 0) starts an
// empty file. A resumed run first rewrites the file (atomically) keeping only the complete records
// with "step" <= resume_step, dropping what a killed run logged after its last checkpoint and any
// torn last line, so the file always describes one consistent run.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  MetricsWriter(const std::string& path, int64_t resume_step);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  void write(const JsonRecord& r);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace resin::train
