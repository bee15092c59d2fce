// SGD with momentum, dampening, Nesterov momentum and (coupled) weight decay: torch.optim.SGD's rule.
// For each parameter p with gradient g (lr and weight_decay from p's group):
//   d = g + weight_decay * p                      (when weight_decay != 0)
//   when momentum != 0:
//     buf = d                                     (first step: no dampening, as torch)
//     buf = momentum * buf + (1 - dampening) * d  (later steps)
//     d   = nesterov ? d + momentum * buf : buf
//   p = p - lr * d
// State: "momentum_buffer" (shaped like p) once momentum != 0 and p has had a gradient.
#pragma once
#include "resin/optim/optimizer.h"

namespace resin::optim {

struct SgdOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  // Throws when momentum/dampening are negative or nesterov is asked for without momentum or with
  // dampening (torch's conditions).
  Sgd(std::vector<ParamGroup> groups, SgdOptions o = {});
  // One group holding `params`.
  Sgd(std::vector<Tensor> params, double lr, double weight_decay = 0.0, SgdOptions o = {});

  const SgdOptions& sgd_options() const { return o_; }

 protected:
  void update(const ParamGroup& group, const Tensor& p, const Tensor& grad, ParamState& state) override;
  std::vector<std::string> state_names() const override;
  std::vector<OptionRef> options() override;
  void check_options() const override;

 private:
  SgdOptions o_;
};

}  // namespace resin::optim
