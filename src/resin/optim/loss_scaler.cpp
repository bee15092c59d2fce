#include "resin/optim/loss_scaler.h"

#include <cfloat>
#include <cmath>

#include "resin/core/error.h"
#include "resin/ops/ops.h"
#include "resin/optim/clip.h"
#include "resin/optim/optimizer.h"

namespace resin::optim {

namespace {

std::vector<Tensor> params_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<Tensor> out;
  out.reserve(named.size());
  for (const auto& [n, p] : named) out.push_back(p);
  return out;
}

// The whole number in state[key] (a one-element tensor), checked to be in [0, 2^53).
int64_t count_entry(const std::map<std::string, Tensor>& state, const char* key) {
  auto it = state.find(key);
  RESIN_CHECK(it != state.end(), "LossScaler::load_state_dict: missing key ", key);
  RESIN_CHECK(it->second.defined() && it->second.numel() == 1, "LossScaler::load_state_dict: ", key,
              " must be a scalar, got shape ", it->second.shape());
  const double v = it->second.item();
  RESIN_CHECK(v >= 0 && v < 0x1p53 && v == std::floor(v), "LossScaler::load_state_dict: ", key,
              " must be a whole number >= 0, got ", v);
  return static_cast<int64_t>(v);
}

}  // namespace

LossScaler::LossScaler(LossScalerOptions o) : o_(o), scale_(o.init_scale) {
  RESIN_CHECK(std::isfinite(o.init_scale) && o.init_scale >= FLT_MIN && o.init_scale <= FLT_MAX,
              "LossScaler: the initial scale must be a positive number within f32's normal range, got ",
              o.init_scale);
  RESIN_CHECK(std::isfinite(o.growth_factor) && o.growth_factor > 1,
              "LossScaler: growth_factor must be > 1, got ", o.growth_factor);
  RESIN_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1,
              "LossScaler: backoff_factor must be in (0, 1), got ", o.backoff_factor);
  RESIN_CHECK(o.growth_interval >= 1, "LossScaler: growth_interval must be >= 1, got ", o.growth_interval);
}

Tensor LossScaler::scale(const Tensor& loss) const { return mul(loss, scale_); }

bool LossScaler::unscale(const std::vector<std::pair<std::string, Tensor>>& named) {
  const std::vector<Tensor> params = params_of(named);
  found_inf_ = !grads_finite(params);
  if (found_inf_) return false;
  scale_grads(params, 1.0 / scale_);
  return true;
}

void LossScaler::update() {
  const bool overflow = found_inf_;
  found_inf_ = false;
  if (!o_.dynamic) return;
  if (overflow) {
    // Backing off stops at f32's smallest normal value: below it, S in f32 (the loss's type) would
    // lose precision and 1/S overflow.
    scale_ = std::max(scale_ * o_.backoff_factor, static_cast<double>(FLT_MIN));
    growth_tracker_ = 0;
    ++overflow_steps_;
    return;
  }
  if (++growth_tracker_ < o_.growth_interval) return;
  growth_tracker_ = 0;
  // Like torch, a scale that would no longer be a finite f32 does not grow.
  if (scale_ * o_.growth_factor <= FLT_MAX) scale_ *= o_.growth_factor;
}

std::map<std::string, Tensor> LossScaler::state_dict() const {
  return {{"scale", scalar_f64(scale_)},
          {"growth_tracker", scalar_i64(growth_tracker_)},
          {"overflow_steps", scalar_i64(overflow_steps_)}};
}

void LossScaler::load_state_dict(const std::map<std::string, Tensor>& state) {
  for (const auto& [k, v] : state)
    RESIN_CHECK(k == "scale" || k == "growth_tracker" || k == "overflow_steps",
                "LossScaler::load_state_dict: unexpected key ", k,
                " (expected scale, growth_tracker, overflow_steps)");
  auto it = state.find("scale");
  RESIN_CHECK(it != state.end(), "LossScaler::load_state_dict: missing key scale");
  RESIN_CHECK(it->second.defined() && it->second.numel() == 1,
              "LossScaler::load_state_dict: scale must be a scalar, got shape ", it->second.shape());
  const double s = it->second.item();
  RESIN_CHECK(std::isfinite(s) && s >= FLT_MIN && s <= FLT_MAX,
              "LossScaler::load_state_dict: scale must be a positive number within f32's normal range, got ",
              s);
  const int64_t tracker = count_entry(state, "growth_tracker");
  const int64_t overflows = count_entry(state, "overflow_steps");
  RESIN_CHECK(tracker < o_.growth_interval, "LossScaler::load_state_dict: growth_tracker ", tracker,
              " is not below growth_interval ", o_.growth_interval);
  scale_ = s;
  growth_tracker_ = tracker;
  overflow_steps_ = overflows;
  found_inf_ = false;
}

}  // namespace resin::optim
