// Whether ops record history. Thread-local, like torch.no_grad().
#pragma once

namespace resin {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool e);
};

// RAII: disables graph recording in this scope (optimizer steps, evaluation, backward itself).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace resin
