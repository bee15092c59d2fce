#include "resin/nn/module.h"

#include <set>
#include <sstream>

#include "resin/autograd/grad_mode.h"
#include "resin/backend/backend.h"
#include "resin/core/cuda.h"

namespace resin::nn {

std::string LoadReport::str() const {
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << what << " (" << v.size() << "):";
    for (size_t i = 0; i < v.size() && i < 20; ++i) os << " " << v[i];
    if (v.size() > 20) os << " ...";
    os << "\n";
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape mismatches", mismatched);
  return os.str();
}

OnnxValue Module::export_onnx(OnnxEmitter&, const OnnxValue&) {
  RESIN_FAIL("cannot export ", type_name(), " to ONNX (no ONNX form is defined for it)");
}

Tensor& Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  RESIN_CHECK(!name.empty() && name.find('.') == std::string::npos, "register_parameter: invalid name '", name, "'");
  for (auto& [n, _] : params_) RESIN_CHECK(n != name, "register_parameter: '", name, "' already registered");
  if (t.defined()) t.set_requires_grad(requires_grad);
  params_.emplace_back(name, t);
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  RESIN_CHECK(!name.empty() && name.find('.') == std::string::npos, "register_buffer: invalid name '", name, "'");
  for (auto& [n, _] : buffers_) RESIN_CHECK(n != name, "register_buffer: '", name, "' already registered");
  buffers_.emplace_back(name, t);
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, ModulePtr m) {
  RESIN_CHECK(m != nullptr, "register_module: '", name, "' is null");
  for (auto& [n, _] : children_) RESIN_CHECK(n != name, "register_module: '", name, "' already registered");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [n, t] : params ? params_ : buffers_)
    if (t.defined()) out.emplace_back(prefix + n, t);
  for (const auto& [n, c] : children_) c->collect(prefix + n + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<std::pair<std::string, ModulePtr>> Module::named_modules() const {
  // Iterative pre-order walk: deep networks must not recurse per block.
  std::vector<std::pair<std::string, ModulePtr>> ordered;
  std::vector<std::pair<std::string, ModulePtr>> st;
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) st.emplace_back(it->first, it->second);
  while (!st.empty()) {
    auto [path, m] = st.back();
    st.pop_back();
    ordered.emplace_back(path, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it) st.emplace_back(path + "." + it->first, it->second);
  }
  return ordered;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

ModulePtr Module::child(const std::string& name) const {
  for (const auto& [n, c] : children_)
    if (n == name) return c;
  RESIN_FAIL(type_name(), ": no child module named '", name, "'");
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [_, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [_, c] : children_) c->train(on);
}

void Module::to(DType dtype) {
  RESIN_CHECK(is_floating(dtype), "Module::to: expected a floating dtype, got ", dtype);
  NoGradGuard ng;
  for (auto& [_, t] : params_)
    if (t.defined() && is_floating(t.dtype()) && t.dtype() != dtype) {
      const bool rg = t.requires_grad();
      t = t.detach().to(dtype);
      t.set_requires_grad(rg);
    }
  for (auto& [_, t] : buffers_)
    if (t.defined() && is_floating(t.dtype()) && t.dtype() != dtype) t = t.detach().to(dtype);
  for (auto& [_, c] : children_) c->to(dtype);
}

void Module::to(Device device) {
  cuda::check_device(device);
  NoGradGuard ng;
  for (auto& [_, t] : params_)
    if (t.defined() && t.device() != device) {
      const bool rg = t.requires_grad();
      t = t.detach().to(device);
      t.set_requires_grad(rg);
    }
  for (auto& [_, t] : buffers_)
    if (t.defined() && is_floating(t.dtype()) && t.device() != device) t = t.detach().to(device);
  for (auto& [_, c] : children_) c->to(device);
}

std::optional<Device> Module::placement() const {
  for (const auto& [_, t] : named_parameters())
    if (t.defined()) return t.device();
  for (const auto& [_, t] : named_buffers())
    if (t.defined() && is_floating(t.dtype())) return t.device();
  return std::nullopt;
}

void Module::zero_grad() {
  for (auto& [_, t] : named_parameters()) t.zero_grad();
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, t] : named_parameters()) out[n] = t.detach();
  for (auto& [n, t] : named_buffers()) out[n] = t.detach();
  return out;
}

LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  LoadReport r;
  auto mine = named_parameters();
  for (auto& nb : named_buffers()) mine.push_back(nb);
  std::set<std::string> seen;
  for (auto& [n, t] : mine) {
    seen.insert(n);
    auto it = state.find(n);
    if (it == state.end()) {
      r.missing.push_back(n);
      continue;
    }
    if (it->second.shape() != t.shape())
      r.mismatched.push_back(n + ": " + it->second.shape().str() + " in the state vs " + t.shape().str() + " in the model");
  }
  for (auto& [n, _] : state)
    if (!seen.count(n)) r.unexpected.push_back(n);
  RESIN_CHECK(r.mismatched.empty() && (!strict || r.ok()), "load_state_dict: the weights do not fit this ",
              type_name(), ":\n", r.str());
  NoGradGuard ng;
  for (auto& [n, t] : mine) {
    auto it = state.find(n);
    if (it == state.end()) continue;
    // Values may come from another device (a CPU checkpoint into a GPU model, or back).
    const Tensor& v = it->second;
    backend::backend_for(t).copy(v.device() == t.device() ? v : v.to(t.device()), t.detach());
  }
  return r;
}

std::string Module::str(int indent) const {
  std::ostringstream os;
  os << type_name() << "(" << extra_repr();
  if (!children_.empty()) {
    os << "\n";
    for (auto& [n, c] : children_) os << std::string(indent + 2, ' ') << "(" << n << "): " << c->str(indent + 2) << "\n";
    os << std::string(indent, ' ');
  }
  os << ")";
  return os.str();
}

}  // namespace resin::nn
