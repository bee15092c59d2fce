#include "resin/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace resin::optim {

namespace {

std::string list(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

void check_step(int64_t step, const char* who) { RESIN_CHECK(step >= 0, who, ": step must be >= 0, got ", step); }

}  // namespace

double ConstantLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "ConstantLr");
  return base_lr;
}

MultiStepLr::MultiStepLr(std::vector<int64_t> milestones, double gamma)
    : milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
}

double MultiStepLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "MultiStepLr");
  const auto k = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  // Python's float ** int is pow() on doubles.
  return base_lr * std::pow(gamma_, static_cast<double>(k));
}

std::string MultiStepLr::str() const { return str_cat("MultiStepLr(milestones=", list(milestones_), ", gamma=", gamma_, ")"); }

CosineAnnealingLr::CosineAnnealingLr(int64_t t_max, double eta_min) : t_max_(t_max), eta_min_(eta_min) {
  RESIN_CHECK(t_max > 0, "CosineAnnealingLr: t_max must be > 0, got ", t_max);
}

double CosineAnnealingLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "CosineAnnealingLr");
  // Same operation order as torch's closed form.
  const double angle = std::numbers::pi * static_cast<double>(step) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr - eta_min_) * (1 + std::cos(angle)) / 2;
}

std::string CosineAnnealingLr::str() const { return str_cat("CosineAnnealingLr(t_max=", t_max_, ", eta_min=", eta_min_, ")"); }

LinearLr::LinearLr(double start_factor, double end_factor, int64_t total_iters)
    : start_(start_factor), end_(end_factor), total_(total_iters) {
  RESIN_CHECK(start_factor >= 0 && start_factor <= 1, "LinearLr: start_factor must be in [0, 1], got ", start_factor);
  RESIN_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLr: end_factor must be in [0, 1], got ", end_factor);
  RESIN_CHECK(total_iters > 0, "LinearLr: total_iters must be > 0, got ", total_iters);
}

double LinearLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "LinearLr");
  const double done = static_cast<double>(std::min(total_, step));
  return base_lr * (start_ + (end_ - start_) * done / static_cast<double>(total_));
}

std::string LinearLr::str() const {
  return str_cat("LinearLr(start_factor=", start_, ", end_factor=", end_, ", total_iters=", total_, ")");
}

SequentialLr::SequentialLr(std::vector<LrSchedulePtr> schedules, std::vector<int64_t> milestones)
    : schedules_(std::move(schedules)), milestones_(std::move(milestones)) {
  RESIN_CHECK(!schedules_.empty(), "SequentialLr: needs at least one schedule");
  RESIN_CHECK(milestones_.size() + 1 == schedules_.size(), "SequentialLr: expected ", schedules_.size() - 1,
              " milestones for ", schedules_.size(), " schedules, got ", milestones_.size());
  for (const auto& s : schedules_) RESIN_CHECK(s != nullptr, "SequentialLr: got a null schedule");
  RESIN_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()) &&
                  (milestones_.empty() || milestones_.front() >= 0),
              "SequentialLr: milestones must be non-negative and non-decreasing, got ", list(milestones_));
}

double SequentialLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "SequentialLr");
  const auto k = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  const int64_t start = k == 0 ? 0 : milestones_[static_cast<size_t>(k - 1)];
  return schedules_[static_cast<size_t>(k)]->lr_at(step - start, base_lr);
}

std::string SequentialLr::str() const {
  std::string s = "SequentialLr([";
  for (size_t i = 0; i < schedules_.size(); ++i) s += (i ? ", " : "") + schedules_[i]->str();
  return s + "], milestones=" + list(milestones_) + ")";
}

PerEpochLr::PerEpochLr(LrSchedulePtr per_epoch, int64_t iters_per_epoch)
    : inner_(std::move(per_epoch)), iters_per_epoch_(iters_per_epoch) {
  RESIN_CHECK(inner_ != nullptr, "PerEpochLr: got a null schedule");
  RESIN_CHECK(iters_per_epoch > 0, "PerEpochLr: iters_per_epoch must be > 0, got ", iters_per_epoch);
}

double PerEpochLr::lr_at(int64_t step, double base_lr) const {
  check_step(step, "PerEpochLr");
  return inner_->lr_at(step / iters_per_epoch_, base_lr);
}

std::string PerEpochLr::str() const { return str_cat("PerEpochLr(", inner_->str(), ", iters_per_epoch=", iters_per_epoch_, ")"); }

LrSchedulePtr warmup_then(int64_t warmup_steps, double start_factor, LrSchedulePtr after) {
  RESIN_CHECK(after != nullptr, "warmup_then: got a null schedule");
  RESIN_CHECK(warmup_steps >= 0, "warmup_then: warmup_steps must be >= 0, got ", warmup_steps);
  if (warmup_steps == 0) return after;
  auto warm = std::make_shared<LinearLr>(start_factor, 1.0, warmup_steps);
  return std::make_shared<SequentialLr>(std::vector<LrSchedulePtr>{warm, std::move(after)},
                                        std::vector<int64_t>{warmup_steps});
}

std::vector<int64_t> epochs_to_iterations(const std::vector<int64_t>& epochs, int64_t iters_per_epoch) {
  RESIN_CHECK(iters_per_epoch > 0, "epochs_to_iterations: iters_per_epoch must be > 0, got ", iters_per_epoch);
  std::vector<int64_t> out;
  for (int64_t e : epochs) out.push_back(e * iters_per_epoch);
  return out;
}

LrScheduler::LrScheduler(Optimizer& optimizer, LrSchedulePtr schedule)
    : optimizer_(&optimizer), schedule_(std::move(schedule)) {
  RESIN_CHECK(schedule_ != nullptr, "LrScheduler: got a null schedule");
  for (auto& g : optimizer_->param_groups())
    if (!g.initial_lr) g.initial_lr = g.lr;
  apply();
}

void LrScheduler::apply() {
  for (auto& g : optimizer_->param_groups()) {
    // Groups added after construction start from their own lr.
    if (!g.initial_lr) g.initial_lr = g.lr;
    g.lr = schedule_->lr_at(step_, *g.initial_lr);
  }
}

void LrScheduler::step() {
  ++step_;
  apply();
}

void LrScheduler::set_step(int64_t step) {
  RESIN_CHECK(step >= 0, "LrScheduler::set_step: step must be >= 0, got ", step);
  step_ = step;
  apply();
}

std::vector<double> LrScheduler::current_lrs() const {
  std::vector<double> out;
  for (const auto& g : optimizer_->param_groups()) out.push_back(g.lr);
  return out;
}

std::map<std::string, Tensor> LrScheduler::state_dict() const { return {{"step", scalar_i64(step_)}}; }

void LrScheduler::load_state_dict(const std::map<std::string, Tensor>& state) {
  auto it = state.find("step");
  RESIN_CHECK(it != state.end(), "LrScheduler::load_state_dict: missing key step");
  RESIN_CHECK(state.size() == 1, "LrScheduler::load_state_dict: unexpected keys besides step (", state.size(),
              " keys)");
  RESIN_CHECK(it->second.defined() && it->second.numel() == 1,
              "LrScheduler::load_state_dict: step must be a scalar, got shape ", it->second.shape());
  const double step = it->second.item();  // checked before the cast, which would be UB out of range
  RESIN_CHECK(step >= 0 && step < 0x1p63 && step == std::floor(step),
              "LrScheduler::load_state_dict: step must be a whole number >= 0, got ", step);
  set_step(static_cast<int64_t>(step));
}

}  // namespace resin::optim
