#include "resin/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_set>

#include "resin/autograd/grad_mode.h"
#include "resin/backend/backend.h"
#include "resin/optim/detail.h"

namespace resin::optim {

namespace detail {

bool same_dense_layout(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype() || a.device() != b.device()) return false;
  if (!a.is_non_overlapping_dense() || !b.is_non_overlapping_dense()) return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

Tensor copy_into_layout(const Tensor& src, const Tensor& like) {
  RESIN_CHECK(src.shape() == like.shape(), "optim: cannot copy a tensor of shape ", src.shape(),
              " into one of shape ", like.shape());
  Tensor dst = empty_like(like);
  backend::backend_for(dst).copy(src, dst);
  return dst;
}

Tensor zeros_in_layout(const Tensor& like) {
  Tensor t = empty_like(like);
  backend::backend_for(t).fill(t, 0.0);
  return t;
}

Tensor match_layout(const Tensor& src, const Tensor& like) {
  return same_dense_layout(src, like) ? src : copy_into_layout(src, like);
}

}  // namespace detail

Tensor scalar_i64(int64_t v) { return from_data<int64_t>({v}, Shape{}); }
Tensor scalar_f64(double v) { return from_data<double>({v}, Shape{}); }

namespace {

std::string group_key(size_t g, const char* field) { return str_cat("param_groups.", g, ".", field); }

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// Parses "state.<g>.<i>.<name>"; false when the key has another form.
bool parse_state_key(const std::string& key, size_t& g, size_t& i, std::string& name) {
  unsigned long long gg = 0, ii = 0;
  int consumed = 0;
  if (std::sscanf(key.c_str(), "state.%llu.%llu.%n", &gg, &ii, &consumed) != 2 || consumed == 0) return false;
  g = static_cast<size_t>(gg);
  i = static_cast<size_t>(ii);
  name = key.substr(static_cast<size_t>(consumed));
  return !name.empty();
}

bool is_scalar(const Tensor& t) { return t.defined() && t.numel() == 1; }

// A count read back from a file: a whole number that fits int64 (a cast would be UB otherwise).
bool is_count(double v) { return v >= 0 && v < 0x1p63 && v == std::floor(v); }

}  // namespace

Optimizer::Optimizer(std::string type_name, std::vector<ParamGroup> groups) : name_(std::move(type_name)) {
  RESIN_CHECK(!groups.empty(), "optimizer: got an empty list of parameter groups");
  for (auto& g : groups) add_param_group(std::move(g));
}

std::string Optimizer::param_label(size_t g, size_t i) const {
  const ParamGroup& grp = groups_[g];
  if (i < grp.names.size() && !grp.names[i].empty()) return str_cat("'", grp.names[i], "'");
  return str_cat("parameter ", i, " of group ", g);
}

void Optimizer::check_group(const ParamGroup& g, size_t index) const {
  const std::string& who = type_name();
  RESIN_CHECK(g.names.empty() || g.names.size() == g.params.size(), who, ": group ", index, " has ",
              g.params.size(), " parameters but ", g.names.size(), " names");
  RESIN_CHECK(g.lr >= 0, who, ": group ", index, " has invalid learning rate ", g.lr);
  RESIN_CHECK(g.weight_decay >= 0, who, ": group ", index, " has invalid weight_decay ", g.weight_decay);
  for (size_t i = 0; i < g.params.size(); ++i) {
    const Tensor& p = g.params[i];
    const std::string label = i < g.names.size() ? "'" + g.names[i] + "'" : str_cat("parameter ", i);
    RESIN_CHECK(p.defined(), who, ": ", label, " of group ", index, " is undefined");
    RESIN_CHECK(p.is_leaf(), who, ": can't optimize a non-leaf tensor (", label, " of group ", index, ")");
    RESIN_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, who, ": ", label, " of group ", index,
                " has dtype ", p.dtype(), "; optimizers update f32 or f64 parameters");
    RESIN_CHECK(p.is_non_overlapping_dense(), who, ": ", label, " of group ", index,
                " is not dense in memory (strides ", p.strides(), " for shape ", p.shape(), ")");
  }
}

void Optimizer::add_param_group(ParamGroup g) {
  check_group(g, groups_.size());
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& grp : groups_)
    for (const auto& p : grp.params) seen.insert(p.impl());
  for (const auto& p : g.params) {
    RESIN_CHECK(seen.insert(p.impl()).second, type_name(),
                ": some parameters appear in more than one parameter group (or twice in one)");
  }
  state_.emplace_back(g.params.size());
  groups_.push_back(std::move(g));
}

const std::map<std::string, Tensor>& Optimizer::state(size_t group, size_t index) const {
  RESIN_CHECK(group < state_.size() && index < state_[group].size(), type_name(), "::state: no parameter ",
              index, " in group ", group);
  return state_[group][index];
}

void Optimizer::step() {
  NoGradGuard no_grad;
  // Groups may have been edited through param_groups(); keep one state slot per parameter.
  state_.resize(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& grp = groups_[gi];
    state_[gi].resize(grp.params.size());
    for (size_t i = 0; i < grp.params.size(); ++i) {
      const Tensor& p = grp.params[i];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      RESIN_CHECK(grad.shape() == p.shape(), type_name(), "::step: gradient of ", param_label(gi, i),
                  " has shape ", grad.shape(), ", the parameter has shape ", p.shape());
      RESIN_CHECK(p.is_non_overlapping_dense() && (p.dtype() == DType::f32 || p.dtype() == DType::f64),
                  type_name(), "::step: ", param_label(gi, i), " must be a dense f32/f64 tensor, got dtype ",
                  p.dtype(), " on ", p.device());
      RESIN_CHECK(grad.device() == p.device(), type_name(), "::step: gradient of ", param_label(gi, i), " is on ",
                  grad.device(), ", the parameter on ", p.device());
      update(grp, p, detail::match_layout(grad, p), state_[gi][i]);
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  NoGradGuard no_grad;
  std::map<std::string, Tensor> out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& grp = groups_[g];
    out[group_key(g, "num_params")] = scalar_i64(static_cast<int64_t>(grp.params.size()));
    out[group_key(g, "lr")] = scalar_f64(grp.lr);
    out[group_key(g, "weight_decay")] = scalar_f64(grp.weight_decay);
    if (grp.initial_lr) out[group_key(g, "initial_lr")] = scalar_f64(*grp.initial_lr);
  }
  // options() hands out pointers for loading; here they are only read.
  for (const auto& o : const_cast<Optimizer*>(this)->options())
    out["options." + o.name] = scalar_f64(o.flag ? (*o.flag ? 1.0 : 0.0) : *o.value);
  for (size_t g = 0; g < state_.size(); ++g)
    for (size_t i = 0; i < state_[g].size(); ++i)
      for (const auto& [name, t] : state_[g][i]) out[str_cat("state.", g, ".", i, ".", name)] = t.clone();
  return out;
}

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& in) {
  NoGradGuard no_grad;
  const std::string who = type_name() + "::load_state_dict";
  std::vector<std::string> errors;
  std::set<std::string> used;
  auto get = [&](const std::string& key, bool required) -> const Tensor* {
    auto it = in.find(key);
    if (it == in.end()) {
      if (required) errors.push_back("missing key " + key);
      return nullptr;
    }
    used.insert(key);
    if (!is_scalar(it->second)) {
      errors.push_back(str_cat(key, " must be a scalar, got shape ", it->second.shape()));
      return nullptr;
    }
    return &it->second;
  };

  // Options first: the expected state names depend on them (amsgrad adds a buffer).
  std::vector<OptionRef> opts = options();
  std::vector<double> old_values;
  for (const auto& o : opts) old_values.push_back(o.flag ? (*o.flag ? 1.0 : 0.0) : *o.value);
  auto set_options = [&](const std::vector<double>& v) {
    for (size_t k = 0; k < opts.size(); ++k) {
      if (opts[k].flag) *opts[k].flag = v[k] != 0;
      else *opts[k].value = v[k];
    }
  };
  std::vector<double> new_values = old_values;
  for (size_t k = 0; k < opts.size(); ++k)
    if (const Tensor* t = get("options." + opts[k].name, true)) new_values[k] = t->item();

  // Groups: count them and check their sizes.
  size_t saved_groups = 0;
  while (in.count(group_key(saved_groups, "num_params"))) ++saved_groups;
  if (saved_groups != groups_.size())
    errors.push_back(str_cat("the state has ", saved_groups, " parameter groups, the optimizer has ", groups_.size()));
  const size_t ng = std::min(saved_groups, groups_.size());
  for (size_t g = 0; g < ng; ++g) {
    if (const Tensor* t = get(group_key(g, "num_params"), true)) {
      const double n = t->item();
      if (n != static_cast<double>(groups_[g].params.size()))
        errors.push_back(str_cat("group ", g, " has ", n, " parameters in the state, ", groups_[g].params.size(),
                                 " in the optimizer"));
    }
    for (const char* field : {"lr", "weight_decay", "initial_lr"})
      if (const Tensor* t = get(group_key(g, field), field[0] != 'i'))  // initial_lr is optional
        if (!(std::isfinite(t->item()) && t->item() >= 0))
          errors.push_back(str_cat(group_key(g, field), " must be a finite number >= 0, got ", t->item()));
  }

  // Per-parameter state, validated against the loaded options.
  set_options(new_values);
  try {
    check_options();
  } catch (const Error& e) {
    errors.push_back(str_cat("invalid options in the state (", e.what(), ")"));
  }
  const std::vector<std::string> names = state_names();
  const std::vector<std::string> counters = counter_names();
  set_options(old_values);
  std::map<std::pair<size_t, size_t>, std::map<std::string, Tensor>> entries;
  for (const auto& [key, t] : in) {
    size_t g = 0, i = 0;
    std::string name;
    if (!parse_state_key(key, g, i, name)) continue;
    used.insert(key);
    if (g >= ng || i >= groups_[g].params.size()) {
      errors.push_back(str_cat(key, " names parameter ", i, " of group ", g, ", which the optimizer does not have"));
      continue;
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      errors.push_back(str_cat("unexpected state entry ", key, " (", type_name(), " keeps [", join(names), "])"));
      continue;
    }
    const bool counter = std::find(counters.begin(), counters.end(), name) != counters.end();
    const Tensor& p = groups_[g].params[i];
    if (counter ? !is_scalar(t) : t.shape() != p.shape()) {
      errors.push_back(str_cat(key, " has shape ", t.shape(), ", expected ", counter ? Shape{} : p.shape(),
                               " (", param_label(g, i), ")"));
      continue;
    }
    if (counter && !is_count(t.item())) {
      errors.push_back(str_cat(key, " must be a whole number >= 0, got ", t.item()));
      continue;
    }
    entries[{g, i}][name] = t;
  }
  for (const auto& [gi, m] : entries) {
    if (m.size() == names.size()) continue;
    std::vector<std::string> missing;
    for (const auto& n : names)
      if (!m.count(n)) missing.push_back(str_cat("state.", gi.first, ".", gi.second, ".", n));
    errors.push_back("missing state entries " + join(missing));
  }
  std::vector<std::string> unexpected;
  for (const auto& [key, t] : in)
    if (!used.count(key)) unexpected.push_back(key);
  if (!unexpected.empty()) errors.push_back("unexpected keys " + join(unexpected));
  RESIN_CHECK(errors.empty(), who, ": ", join(errors, "; "));

  // Everything checked: apply.
  set_options(new_values);
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& grp = groups_[g];
    grp.lr = in.at(group_key(g, "lr")).item();
    grp.weight_decay = in.at(group_key(g, "weight_decay")).item();
    auto it = in.find(group_key(g, "initial_lr"));
    grp.initial_lr = it == in.end() ? std::nullopt : std::optional<double>(it->second.item());
    state_[g].assign(grp.params.size(), ParamState{});
  }
  for (const auto& [gi, m] : entries) {
    const Tensor& p = groups_[gi.first].params[gi.second];
    ParamState& s = state_[gi.first][gi.second];
    for (const auto& [name, t] : m) {
      const bool counter = std::find(counters.begin(), counters.end(), name) != counters.end();
      s[name] = counter ? scalar_i64(static_cast<int64_t>(t.item())) : detail::copy_into_layout(t, p);
    }
  }
}

std::vector<ParamGroup> weight_decay_param_groups(const std::vector<std::pair<std::string, Tensor>>& named,
                                                  double lr, double weight_decay) {
  std::vector<ParamGroup> groups(2);
  groups[0].lr = groups[1].lr = lr;
  groups[0].weight_decay = weight_decay;
  groups[1].weight_decay = 0.0;
  for (const auto& [name, p] : named) {
    if (!p.requires_grad()) continue;
    ParamGroup& g = groups[p.dim() > 1 ? 0 : 1];
    g.params.push_back(p);
    g.names.push_back(name);
  }
  return groups;
}

}  // namespace resin::optim
