// Learning-rate schedules: pure functions from a step count to a learning rate, plus LrScheduler,
// which applies one to an optimizer's groups.
//
// Units. A schedule counts "steps" and does not care what a step is: torch schedulers are usually
// stepped once per epoch, a resin trainer calls LrScheduler::step() once per ITERATION. Two ways
// to express epoch-based recipes with per-iteration stepping:
//   - smooth per-iteration schedules: give milestones/periods in iterations
//     (epochs_to_iterations({30, 60, 80}, iters_per_epoch), CosineAnnealingLr(epochs * ipe));
//   - torch's per-epoch behaviour (lr constant within an epoch): wrap the epoch-based schedule in
//     PerEpochLr(schedule, iters_per_epoch), which evaluates it at floor(iteration / ipe).
//
// Values are torch.optim.lr_scheduler's closed forms (_get_closed_form_lr, used by torch for
// step(epoch)), evaluated in double. Stepping a torch scheduler without an epoch uses recursive
// (chainable) updates that agree with these to rounding error, not bit for bit.
//   MultiStepLr        base * gamma^(number of milestones <= step)
//   CosineAnnealingLr  eta_min + (base - eta_min) * (1 + cos(pi * step / t_max)) / 2
//                      (periodic beyond t_max, as torch's)
//   LinearLr           base * (start + (end - start) * min(step, total) / total)
//   SequentialLr       schedule k (k = number of milestones <= step) at step - milestone[k-1]
//                      (torch.optim.lr_scheduler.SequentialLR: each schedule restarts at 0)
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "resin/optim/optimizer.h"

namespace resin::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // The learning rate at `step` (>= 0) for a group whose base (initial) learning rate is base_lr.
  virtual double lr_at(int64_t step, double base_lr) const = 0;
  virtual std::string str() const = 0;
};
using LrSchedulePtr = std::shared_ptr<const LrSchedule>;

class ConstantLr : public LrSchedule {
 public:
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override { return "ConstantLr"; }
};

class MultiStepLr : public LrSchedule {
 public:
  // Milestones may come in any order; a repeated milestone applies gamma once per occurrence.
  explicit MultiStepLr(std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override;

 private:
  std::vector<int64_t> milestones_;  // sorted
  double gamma_;
};

class CosineAnnealingLr : public LrSchedule {
 public:
  explicit CosineAnnealingLr(int64_t t_max, double eta_min = 0.0);  // t_max > 0
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

class LinearLr : public LrSchedule {
 public:
  // Factors in [0, 1], total_iters > 0; after total_iters the factor stays end_factor.
  LinearLr(double start_factor, double end_factor, int64_t total_iters);
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override;

 private:
  double start_, end_;
  int64_t total_;
};

class SequentialLr : public LrSchedule {
 public:
  // milestones.size() == schedules.size() - 1, non-decreasing.
  SequentialLr(std::vector<LrSchedulePtr> schedules, std::vector<int64_t> milestones);
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override;

 private:
  std::vector<LrSchedulePtr> schedules_;
  std::vector<int64_t> milestones_;
};

class PerEpochLr : public LrSchedule {
 public:
  // `per_epoch` counts epochs; lr_at(iteration) = per_epoch.lr_at(iteration / iters_per_epoch).
  PerEpochLr(LrSchedulePtr per_epoch, int64_t iters_per_epoch);
  double lr_at(int64_t step, double base_lr) const override;
  std::string str() const override;

 private:
  LrSchedulePtr inner_;
  int64_t iters_per_epoch_;
};

// Linear warm-up from start_factor * base to base over warmup_steps steps, then `after` (started
// at 0): SequentialLr({LinearLr(start_factor, 1, W), after}, {W}). W = 0 gives `after`.
LrSchedulePtr warmup_then(int64_t warmup_steps, double start_factor, LrSchedulePtr after);

// {e * iters_per_epoch for e in epochs}.
std::vector<int64_t> epochs_to_iterations(const std::vector<int64_t>& epochs, int64_t iters_per_epoch);

// Applies a schedule to every group of an optimizer: group.lr = schedule.lr_at(step, initial_lr).
// Construction records each group's initial_lr (from its lr, when unset) and applies step 0, as
// constructing a torch scheduler does; step() advances one step and applies it (call it after
// optimizer.step(), once per iteration or epoch as the schedule's unit demands). The optimizer
// must outlive the scheduler. State: just the step.
class LrScheduler {
 public:
  LrScheduler(Optimizer& optimizer, LrSchedulePtr schedule);

  void step();
  void set_step(int64_t step);  // jump (e.g. resume) and apply
  int64_t current_step() const { return step_; }
  // The learning rate of each group at the current step.
  std::vector<double> current_lrs() const;
  const LrSchedule& schedule() const { return *schedule_; }

  // {"step": i64 scalar}
  std::map<std::string, Tensor> state_dict() const;
  // Restores the step and applies it; throws on missing/unexpected keys.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  void apply();
  Optimizer* optimizer_;
  LrSchedulePtr schedule_;
  int64_t step_ = 0;
};

}  // namespace resin::optim
