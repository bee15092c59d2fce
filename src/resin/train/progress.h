// Progress reporting: a live single-line bar when stdout is a terminal, plain periodic lines
// otherwise (logs, CI), so output stays readable in both.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace resin::train {

class Progress {
 public:
  // total: steps in this phase; label: e.g. "epoch 3/10"; lines_every: plain-mode line period.
  Progress(std::string label, int64_t total, bool interactive, int64_t lines_every = 100);
  ~Progress();
  // Updates the bar after step `done` (1-based) with a short status text ("loss 0.31 acc 89.2%").
  void update(int64_t done, const std::string& status);
  // Finishes the line with a final status.
  void finish(const std::string& status);
  double elapsed_seconds() const;

  static bool stdout_is_terminal();

 private:
  std::string label_;
  int64_t total_, lines_every_;
  bool interactive_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace resin::train
