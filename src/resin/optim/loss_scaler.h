// Loss scaling for f16 mixed precision, with torch.amp.GradScaler's dynamic algorithm.
//
// f16 values below 2^-24 (its smallest subnormal) round to zero or to 2^-24: small gradients vanish.
// Multiplying the loss by a scale S before backward multiplies every gradient by S, which lifts them into
// f16's range; dividing the (f32) parameter gradients by S afterwards restores their values. Too large an S
// overflows instead: a step whose gradients hold inf or NaN is skipped, and a dynamic scaler halves S; after
// `growth_interval` finite steps in a row it doubles S. Powers of two keep the scaling exact.
//
//   optim::LossScaler scaler;                 // dynamic, S = 65536
//   scaler.scale(loss).backward();
//   if (scaler.unscale(named)) opt.step();    // false: overflow, gradients left as they are
//   scaler.update();                          // after every step, taken or skipped
//   opt.zero_grad();
//
// A static scaler (dynamic = false) keeps S and never skips: unscale() reports non-finite
// gradients and the caller decides (resin train stops, or skips with --skip-nonfinite).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::optim {

struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16, as torch's
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // finite steps in a row before S grows
  bool dynamic = true;
};

class LossScaler {
 public:
  // Throws resin::Error for a scale outside f32's normal range, growth_factor <= 1, backoff_factor
  // outside (0, 1) or growth_interval < 1.
  explicit LossScaler(LossScalerOptions o = {});

  // loss·S (a new tensor in the graph; backward through it scales every gradient by S).
  Tensor scale(const Tensor& loss) const;
  // When every defined gradient is finite, divides them by S (by replacement, optim::scale_grads)
  // and returns true. Otherwise leaves them and returns false; update() then backs off.
  bool unscale(const std::vector<std::pair<std::string, Tensor>>& named);
  // Adjusts S after a step by what the last unscale() found (a step without unscale() counts as
  // finite). Dynamic only: overflow multiplies S by backoff_factor and restarts the count; the
  // growth_interval-th finite step in a row multiplies S by growth_factor. S stays within f32's
  // normal range (a larger one would overflow any loss, a smaller one make 1/S overflow).
  void update();

  double scale_value() const { return scale_; }
  bool dynamic() const { return o_.dynamic; }
  // Finite steps since the last change of S.
  int64_t growth_tracker() const { return growth_tracker_; }
  // Steps skipped for overflow since construction (or as restored).
  int64_t overflow_steps() const { return overflow_steps_; }

  // {"scale" (f64), "growth_tracker", "overflow_steps" (i64)}, one element each, for checkpoints.
  std::map<std::string, Tensor> state_dict() const;
  // Throws resin::Error naming the entry that is missing, of the wrong shape or dtype, or out of range.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 private:
  LossScalerOptions o_;
  double scale_;
  int64_t growth_tracker_ = 0, overflow_steps_ = 0;
  bool found_inf_ = false;
};

}  // namespace resin::optim
