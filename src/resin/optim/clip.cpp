#include "resin/optim/clip.h"

#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/backend/cuda_fused.h"
#include "resin/ops/ops.h"
#include "resin/optim/detail.h"

#include "resin/optim/fp_contract_off.h"  // last include: see the header

namespace resin::optim {

namespace {

// g itself when dense in memory (any order: norms and finiteness do not care), else a copy (on the
// host for the cpu:1 finiteness check). Norms of device gradients are taken on their device
// (device_abs_power_sums); the finiteness checks below stay on the device too. (cpu:1, the
// placement check, takes the device paths here and in scaled(), so tests exercise them.)
Tensor dense(const Tensor& g) {
  const Tensor h = g.device() == Device::cpu() ? g : g.to(Device::cpu());
  return h.is_non_overlapping_dense() ? h : h.contiguous();
}

// sum |x|^p (p finite) or max |x| (p = inf, NaN propagating) over a dense tensor, in double.
// Partial results per fixed-size chunk are combined in chunk order, so the value does not depend
// on the number of threads.
template <class T>
double reduce_abs(const T* x, int64_t n, double p) {
  constexpr int64_t kChunk = 1 << 15;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(std::max<int64_t>(chunks, 1)), 0.0);
  const bool inf = std::isinf(p);
  detail::parallel_chunks(n, [&](int64_t b, int64_t e) {
    double acc = 0;
    for (int64_t k = b; k < e; ++k) {
      const double a = std::abs(static_cast<double>(x[k]));
      if (inf) acc = (std::isnan(a) || std::isnan(acc)) ? acc + a : std::max(acc, a);
      else if (p == 2) acc += a * a;
      else if (p == 1) acc += a;
      else acc += std::pow(a, p);
    }
    part[static_cast<size_t>(b / kChunk)] = acc;
  });
  double total = 0;
  for (double v : part) total = inf ? ((std::isnan(v) || std::isnan(total)) ? total + v : std::max(total, v)) : total + v;
  return total;
}

double root(double s, double p) {
  if (std::isinf(p) || p == 1) return s;
  if (p == 2) return std::sqrt(s);
  return std::pow(s, 1.0 / p);
}

std::vector<Tensor> defined_grads(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) {
    RESIN_CHECK(p.defined(), "clip_grad_norm: got an undefined parameter");
    Tensor g = p.grad();
    if (!g.defined()) continue;
    RESIN_CHECK(g.dtype() == DType::f32 || g.dtype() == DType::f64,
                "clip_grad_norm: gradients must be f32 or f64, got ", g.dtype());
    out.push_back(g);
  }
  return out;
}

// reduce_abs of every gradient not in plain host memory, computed on its device in f64 (converted
// there in chunks of 4M elements, so the temporaries stay small next to the gradient; CUDA's
// reductions accumulate in double), then brought to the host in one copy per run of gradients on
// the same device instead of a copy of every gradient.
void device_abs_power_sums(const std::vector<Tensor>& grads, double p, std::vector<double>& out) {
  constexpr int64_t kChunk = int64_t{1} << 22;
  std::vector<size_t> owner;  // the gradient of each partial result
  std::vector<Tensor> parts;
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (g.device() == Device::cpu() || g.numel() == 0) continue;
    const Tensor flat = g.detach().contiguous().reshape({g.numel()});
    for (int64_t at = 0; at < flat.numel(); at += kChunk) {
      const Tensor a = abs(flat.narrow(0, at, std::min(kChunk, flat.numel() - at)).to(DType::f64));
      owner.push_back(i);
      parts.push_back(std::isinf(p) ? max(a) : p == 1 ? sum(a) : p == 2 ? sum(mul(a, a)) : sum(pow(a, p)));
    }
  }
  const bool inf = std::isinf(p);
  for (size_t k = 0; k < parts.size();) {
    size_t e = k + 1;
    while (e < parts.size() && parts[e].device() == parts[k].device()) ++e;
    const auto values = stack(std::vector<Tensor>(parts.begin() + k, parts.begin() + e), 0).to_vector();
    for (size_t j = k; j < e; ++j) {
      double& acc = out[owner[j]];
      const double v = values[j - k];
      acc =
          inf ? ((std::isnan(v) || std::isnan(acc)) ? acc + v : std::max(acc, v)) : acc + v;  // as reduce_abs
    }
    k = e;
  }
}

// The total norm in the result dtype R (as torch.stack promotes), returned as double.
double total_norm(const std::vector<Tensor>& grads, double p) {
  RESIN_CHECK(p > 0, "clip_grad_norm: norm_type must be > 0 (or infinity), got ", p);
  bool any_f64 = false;
  for (const auto& g : grads) any_f64 |= g.dtype() == DType::f64;
  std::vector<double> sums(grads.size(), 0.0);
  device_abs_power_sums(grads, p, sums);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].device() != Device::cpu()) continue;
    const Tensor d = dense(grads[i]);
    sums[i] = d.dtype() == DType::f64 ? reduce_abs(d.data<double>(), d.numel(), p)
                                      : reduce_abs(d.data<float>(), d.numel(), p);
  }
  auto run = [&](auto rtag) {
    using R = decltype(rtag);
    std::vector<R> norms;
    for (size_t i = 0; i < grads.size(); ++i) {
      const double s = sums[i];
      // torch.norm(g) is in g's dtype, then promoted by torch.stack.
      const double n =
          grads[i].dtype() == DType::f64 ? root(s, p) : static_cast<double>(static_cast<float>(root(s, p)));
      norms.push_back(static_cast<R>(n));
    }
    const double s = reduce_abs(norms.data(), static_cast<int64_t>(norms.size()), p);
    return static_cast<double>(static_cast<R>(root(s, p)));
  };
  return any_f64 ? run(double{}) : run(float{});
}

template <class T>
double clip_coef(double max_norm, double total) {
  const T coef = static_cast<T>(max_norm) / (static_cast<T>(total) + static_cast<T>(1e-6));
  return static_cast<double>(coef > T(1) ? T(1) : coef);  // clamp(max=1) keeps NaN
}

template <class T>
Tensor scaled(const Tensor& g, double coef_d) {
  const T coef = static_cast<T>(coef_d);
  if (g.device() != Device::cpu()) return mul(g, static_cast<double>(coef));  // same rounding: one product
  Tensor out = empty_like(g);
  const Tensor src = detail::match_layout(g, out);
  const T* s = src.data<T>();
  T* o = out.data<T>();
  detail::parallel_chunks(out.numel(), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) o[k] = s[k] * coef;
  });
  return out;
}

double clip_impl(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite,
                 const std::vector<std::string>* names) {
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = defined_grads(params);
  if (grads.empty()) return 0.0;
  const double total = total_norm(grads, norm_type);
  if (error_if_nonfinite && !std::isfinite(total)) {
    std::string culprits;
    if (names) {
      std::vector<std::pair<std::string, Tensor>> named;
      for (size_t i = 0; i < params.size(); ++i) named.emplace_back((*names)[i], params[i]);
      for (const auto& n : nonfinite_grads(named)) culprits += (culprits.empty() ? "" : ", ") + n;
      culprits = "; parameters with non-finite gradients: " + culprits;
    }
    RESIN_FAIL("clip_grad_norm: the total norm of order ", norm_type, " of the gradients is non-finite (", total,
               "), so it cannot be clipped", culprits);
  }
  bool any_f64 = false;
  for (const auto& g : grads) any_f64 |= g.dtype() == DType::f64;
  const double coef = any_f64 ? clip_coef<double>(max_norm, total) : clip_coef<float>(max_norm, total);
  // Multiplying by a coefficient of exactly 1 changes nothing; skip the copies then (a NaN
  // coefficient scales: the gradients become NaN, as torch's).
  if (!(coef >= 1.0)) scale_grads(params, coef);
  return total;
}

template <class T>
bool all_finite(const T* x, int64_t n) {
  bool ok = true;
  for (int64_t k = 0; k < n; ++k) ok &= std::isfinite(x[k]);
  return ok;
}

bool grad_finite(const Tensor& g) {
  const Tensor d = dense(g);
  return d.dtype() == DType::f64 ? all_finite(d.data<double>(), d.numel()) : all_finite(d.data<float>(), d.numel());
}

}  // namespace

void scale_grads(const std::vector<Tensor>& params, double coef) {
  NoGradGuard no_grad;
  for (const auto& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    p.set_grad(g.dtype() == DType::f64 ? scaled<double>(g, coef) : scaled<float>(g, coef));
  }
}

double grad_norm(const std::vector<Tensor>& params, double norm_type) {
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = defined_grads(params);
  return grads.empty() ? 0.0 : total_norm(grads, norm_type);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_impl(params, max_norm, norm_type, error_if_nonfinite, nullptr);
}

double clip_grad_norm(const std::vector<std::pair<std::string, Tensor>>& named, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  std::vector<Tensor> params;
  std::vector<std::string> names;
  for (const auto& [n, p] : named) {
    names.push_back(n);
    params.push_back(p);
  }
  return clip_impl(params, max_norm, norm_type, error_if_nonfinite, &names);
}

namespace {
// Device gradients: one fused check of all of them (one round trip per step in the trainer); only
// when something is non-finite are they checked one by one.
bool device_finite(const std::vector<Tensor>& grads) {
  std::vector<Tensor> gs;
  for (const auto& g : grads)
    if (g.defined() && g.device().type == DeviceType::cuda)
      gs.push_back(g.is_non_overlapping_dense() ? g : g.contiguous());
  return gs.empty() || backend::cuda_fused::all_finite(gs);
}

std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) out.push_back(p.grad());
  return out;
}
}  // namespace

std::vector<std::string> nonfinite_grads(const std::vector<std::pair<std::string, Tensor>>& named) {
  NoGradGuard no_grad;
  std::vector<std::string> out;
  std::vector<Tensor> grads;
  for (const auto& [n, p] : named) grads.push_back(p.grad());
  const bool device_ok = device_finite(grads);
  for (const auto& [n, p] : named) {
    const Tensor g = p.grad();
    if (!g.defined() || (device_ok && g.device().type == DeviceType::cuda)) continue;
    if (g.device().type == DeviceType::cuda ? !device_finite({g}) : !grad_finite(g)) out.push_back(n);
  }
  return out;
}

bool grads_finite(const std::vector<Tensor>& params) {
  NoGradGuard no_grad;
  if (!device_finite(grads_of(params))) return false;
  for (const auto& p : params) {
    const Tensor g = p.grad();
    if (g.defined() && g.device().type == DeviceType::cpu && !grad_finite(g)) return false;
  }
  return true;
}

}  // namespace resin::optim
