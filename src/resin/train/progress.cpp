#include "resin/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace resin::train {

Progress::Progress(std::string label, int64_t total, bool interactive, int64_t lines_every)
    : label_(std::move(label)), total_(total), lines_every_(lines_every), interactive_(interactive),
      start_(std::chrono::steady_clock::now()), last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() {
  if (interactive_ && !finished_) std::fputs("\n", stdout);
}

bool Progress::stdout_is_terminal() { return isatty(fileno(stdout)) == 1; }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

static std::string clock_text(double s) {
  char buf[32];
  const int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
  return buf;
}

void Progress::update(int64_t done, const std::string& status) {
  const auto now = std::chrono::steady_clock::now();
  const double el = elapsed_seconds();
  const double eta = done > 0 ? el / static_cast<double>(done) * static_cast<double>(total_ - done) : 0.0;
  if (interactive_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
    last_draw_ = now;
    const int width = 28;
    const int filled = total_ > 0 ? static_cast<int>(width * done / total_) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::printf("\r%s [%s] %lld/%lld %s<%s %s\x1b[K", label_.c_str(), bar.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), clock_text(el).c_str(), clock_text(eta).c_str(), status.c_str());
    std::fflush(stdout);
  } else if (done % lines_every_ == 0 || done == total_) {
    std::printf("%s step %lld/%lld %s (eta %s) %s\n", label_.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), clock_text(el).c_str(), clock_text(eta).c_str(), status.c_str());
    std::fflush(stdout);
  }
}

void Progress::finish(const std::string& status) {
  finished_ = true;
  if (interactive_) std::printf("\r%s done in %s %s\x1b[K\n", label_.c_str(), clock_text(elapsed_seconds()).c_str(), status.c_str());
  else std::printf("%s done in %s %s\n", label_.c_str(), clock_text(elapsed_seconds()).c_str(), status.c_str());
  std::fflush(stdout);
}

}  // namespace resin::train
