// AdamW (torch.optim.AdamW): Adam with decoupled weight decay. For each parameter p with gradient g
// (lr and weight_decay from p's group), with t its own step count (1 on its first update):
//   p  = p * (1 - lr * weight_decay)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v)                                 (amsgrad; the denominator then uses vmax)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps           (eps outside the square root)
//   p  = p - (lr / (1 - beta1^t)) * m / denom
// State: "step" (i64 scalar), "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq".
#pragma once
#include "resin/optim/optimizer.h"

namespace resin::optim {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  bool amsgrad = false;
};

class AdamW : public Optimizer {
 public:
  // Throws when eps < 0 or a beta is outside [0, 1). Note: torch's AdamW defaults to
  // weight_decay = 1e-2; here each group's weight_decay is explicit.
  AdamW(std::vector<ParamGroup> groups, AdamWOptions o = {});
  AdamW(std::vector<Tensor> params, double lr = 1e-3, double weight_decay = 1e-2, AdamWOptions o = {});

  const AdamWOptions& adamw_options() const { return o_; }

 protected:
  void update(const ParamGroup& group, const Tensor& p, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> state_names() const override;
  std::vector<std::string> counter_names() const override { return {"step"}; }
  std::vector<OptionRef> options() override;
  void check_options() const override;

 private:
  AdamWOptions o_;
};

}  // namespace resin::optim
