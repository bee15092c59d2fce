// Optimizer base: parameter groups, per-parameter state and state serialisation for exact resume.
//
// Contract shared by every optimizer:
// - Parameters are leaf f32/f64 tensors on any device (CUDA ones take fused device kernels, with
//   their state on the same device) whose memory is dense (any dense layout, e.g. channels-last
//   conv weights). A parameter may appear in one group only.
// - step() runs under NoGradGuard and updates parameters IN PLACE (their storage is written, the
//   Tensor handles stay the same). It reads p.grad() and never writes into a gradient tensor (they
//   may be shared). Parameters whose grad is undefined are skipped, as torch skips `grad is None`;
//   their state is created lazily on their first step with a gradient.
// - Scalars follow torch's kernels: hyperparameters are combined in double precision (as Python
//   does) and cast to the parameter dtype before touching tensor elements, and the places where
//   torch's AVX2/AVX-512 CPU kernels fuse a multiply-add (add(alpha=), addcmul) use std::fma, so
//   f64 results are bit-identical to torch.optim on such CPUs.
// - zero_grad() drops gradients (torch's set_to_none=True).
//
// state_dict() keys (all values are fresh copies; scalars are 0-dim tensors):
//   param_groups.<g>.num_params   i64   number of parameters in group g (checked on load)
//   param_groups.<g>.lr           f64
//   param_groups.<g>.weight_decay f64
//   param_groups.<g>.initial_lr   f64   only when set (by an LrScheduler)
//   options.<name>                f64   optimizer-wide hyperparameters (momentum, beta1, amsgrad...)
//   state.<g>.<i>.<name>          the state of parameter i of group g, only once it exists:
//                                 buffers (momentum_buffer, exp_avg, ...) shaped like the parameter
//                                 and step counters (i64 scalars)
// load_state_dict() validates everything before changing anything and throws resin::Error listing
// missing/unexpected keys, group/parameter count mismatches and shape mismatches. Like torch, the
// loaded hyperparameters (group lr/weight_decay/initial_lr and options) replace the current ones;
// buffers are converted to each parameter's dtype and copied into its layout.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::optim {

struct ParamGroup {
  std::vector<Tensor> params = {};
  double lr = 1e-3;
  double weight_decay = 0.0;
  // The lr that schedules scale (torch's group["initial_lr"]); set by the first LrScheduler bound to
  // the optimizer when unset, saved and restored with the optimizer state.
  std::optional<double> initial_lr = std::nullopt;
  // Optional names parallel to params (named_parameters() paths), used in error messages.
  std::vector<std::string> names = {};
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "SGD", "AdamW": prefixes error messages.
  const std::string& type_name() const { return name_; }

  // One update of every parameter that has a gradient.
  void step();
  // Drops every parameter's gradient.
  void zero_grad();

  // Edit lr/weight_decay freely; add parameters with add_param_group(), not by editing `params`
  // (state is kept per (group, index)).
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Appends a group (checked like the constructor's groups). Its parameters start without state.
  void add_param_group(ParamGroup g);

  // The state of parameter `index` of group `group` (empty until its first step with a gradient).
  const std::map<std::string, Tensor>& state(size_t group, size_t index) const;

  std::map<std::string, Tensor> state_dict() const;
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  using ParamState = std::map<std::string, Tensor>;
  // A named optimizer-wide hyperparameter, serialised as options.<name> (bools as 0/1).
  struct OptionRef {
    std::string name;
    double* value = nullptr;
    bool* flag = nullptr;
  };

  Optimizer(std::string type_name, std::vector<ParamGroup> groups);

  // Updates p in place from grad (same dtype and layout as p, never to be written). `state` is
  // empty on the parameter's first update and must be filled with state_names()' entries.
  virtual void update(const ParamGroup& group, const Tensor& p, const Tensor& grad, ParamState& state) = 0;
  // The names an initialised parameter state holds, given the current options.
  virtual std::vector<std::string> state_names() const = 0;
  // Names of state entries that are i64 scalar step counters (the rest are parameter-shaped).
  virtual std::vector<std::string> counter_names() const { return {}; }
  virtual std::vector<OptionRef> options() = 0;
  // Throws resin::Error when the current options are invalid (constructors and load_state_dict).
  virtual void check_options() const {}

 private:
  void check_group(const ParamGroup& g, size_t index) const;
  std::string param_label(size_t g, size_t i) const;

  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
};

// ResNet-recipe groups from named_parameters(): group 0 holds parameters with dim > 1 (conv and
// linear weights) with `weight_decay`; group 1 holds parameters with dim <= 1 (biases and
// BatchNorm/LayerNorm weights) with weight decay 0. Both groups are always returned (possibly
// empty) so indices are stable; parameters that do not require grad are left out.
std::vector<ParamGroup> weight_decay_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                                  double lr, double weight_decay);

// Tensor helpers for optimizer state.
Tensor scalar_i64(int64_t v);
Tensor scalar_f64(double v);

}  // namespace resin::optim
