#include "resin/optim/adamw.h"

#include <cmath>

#include "resin/backend/cuda_fused.h"
#include "resin/optim/detail.h"

#include "resin/optim/fp_contract_off.h"  // last include: see the header

namespace resin::optim {

namespace {

template <class T>
struct AdamWScalars {
  T decay, beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2_sqrt, eps, neg_step_size;
  bool amsgrad;
};

// Mirrors torch's _single_tensor_adamw op by op: param.mul_(1 - lr*wd);
// exp_avg.mul_(b1).add_(g, alpha=1-b1) (fused multiply-add in torch's vector kernel);
// exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2) (fused as fma(value*g, g, .));
// denom = (sqrt(v) / bc2_sqrt).add_(eps); param.addcdiv_(m, denom, value=-step_size), which computes
// p + (value * m) / denom without fusing.
template <bool kAmsgrad, class T>
[[gnu::always_inline]] inline void adamw_loop(T* __restrict p, const T* __restrict g, T* __restrict m,
                                              T* __restrict v, T* __restrict vmax, int64_t n,
                                              const AdamWScalars<T> s) {
  // Locals, not loads through a reference the stores might alias, so the loop can vectorise.
  const T decay = s.decay, beta1 = s.beta1, one_minus_beta1 = s.one_minus_beta1, beta2 = s.beta2,
          one_minus_beta2 = s.one_minus_beta2, bc2_sqrt = s.bias_correction2_sqrt, eps = s.eps,
          neg_step_size = s.neg_step_size;
  for (int64_t k = 0; k < n; ++k) {
    const T gk = g[k];
    const T pk = p[k] * decay;
    const T mk = std::fma(gk, one_minus_beta1, m[k] * beta1);
    const T vk = std::fma(one_minus_beta2 * gk, gk, v[k] * beta2);
    m[k] = mk;
    v[k] = vk;
    T second = vk;
    if constexpr (kAmsgrad) {
      const T old = vmax[k];
      // torch.maximum propagates NaN.
      second = (old != old || vk != vk) ? old + vk : (old > vk ? old : vk);
      vmax[k] = second;
    }
    const T denom = std::sqrt(second) / bc2_sqrt + eps;
    p[k] = pk + (neg_step_size * mk) / denom;
  }
}

template <class T>
[[gnu::always_inline]] inline void adamw_dispatch(T* p, const T* g, T* m, T* v, T* vmax, int64_t n,
                                                  AdamWScalars<T> s) {
  if (s.amsgrad) adamw_loop<true>(p, g, m, v, vmax, n, s);
  else adamw_loop<false>(p, g, m, v, vmax, n, s);
}

RESIN_OPTIM_KERNEL void adamw_kernel(float* p, const float* g, float* m, float* v, float* vmax, int64_t n,
                                     AdamWScalars<float> s) {
  adamw_dispatch(p, g, m, v, vmax, n, s);
}
RESIN_OPTIM_KERNEL void adamw_kernel(double* p, const double* g, double* m, double* v, double* vmax, int64_t n,
                                     AdamWScalars<double> s) {
  adamw_dispatch(p, g, m, v, vmax, n, s);
}

}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions o) : Optimizer("AdamW", std::move(groups)), o_(o) {
  check_options();
}

void AdamW::check_options() const {
  RESIN_CHECK(o_.eps >= 0, "AdamW: invalid epsilon ", o_.eps);
  RESIN_CHECK(o_.beta1 >= 0 && o_.beta1 < 1, "AdamW: invalid beta1 ", o_.beta1, ", expected [0, 1)");
  RESIN_CHECK(o_.beta2 >= 0 && o_.beta2 < 1, "AdamW: invalid beta2 ", o_.beta2, ", expected [0, 1)");
}

AdamW::AdamW(std::vector<Tensor> params, double lr, double weight_decay, AdamWOptions o)
    : AdamW(std::vector<ParamGroup>{ParamGroup{.params = std::move(params), .lr = lr, .weight_decay = weight_decay}},
            o) {}

std::vector<std::string> AdamW::state_names() const {
  if (o_.amsgrad) return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"step", "exp_avg", "exp_avg_sq"};
}

std::vector<Optimizer::OptionRef> AdamW::options() {
  return {{"beta1", &o_.beta1, nullptr},
          {"beta2", &o_.beta2, nullptr},
          {"eps", &o_.eps, nullptr},
          {"amsgrad", nullptr, &o_.amsgrad}};
}

void AdamW::update(const ParamGroup& group, const Tensor& p, const Tensor& grad, ParamState& state) {
  if (state.empty()) {
    state["step"] = scalar_i64(0);
    for (const char* name : {"exp_avg", "exp_avg_sq"}) state[name] = detail::zeros_in_layout(p);
  }
  // Created here too (not only with the rest) when amsgrad was switched on after earlier steps.
  if (o_.amsgrad && !state.count("max_exp_avg_sq")) state["max_exp_avg_sq"] = detail::zeros_in_layout(p);
  int64_t& step = state.at("step").data<int64_t>()[0];
  ++step;
  const Tensor& m = state.at("exp_avg");
  const Tensor& v = state.at("exp_avg_sq");
  const Tensor vmax = o_.amsgrad ? state.at("max_exp_avg_sq") : Tensor();

  // Python-side scalars of torch's implementation, in double.
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1 - std::pow(o_.beta1, t);
  const double bias_correction2 = 1 - std::pow(o_.beta2, t);
  const double step_size = group.lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  if (p.device().type == DeviceType::cuda) {
    backend::cuda_fused::adamw_update(p, grad, m, v, vmax,
                                      {1 - group.lr * group.weight_decay, o_.beta1, 1 - o_.beta1, o_.beta2,
                                       1 - o_.beta2, bias_correction2_sqrt, o_.eps, -step_size, o_.amsgrad});
    return;
  }

  dispatch_dtype(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const AdamWScalars<T> s{static_cast<T>(1 - group.lr * group.weight_decay),
                              static_cast<T>(o_.beta1),
                              static_cast<T>(1 - o_.beta1),
                              static_cast<T>(o_.beta2),
                              static_cast<T>(1 - o_.beta2),
                              static_cast<T>(bias_correction2_sqrt),
                              static_cast<T>(o_.eps),
                              static_cast<T>(-step_size),
                              o_.amsgrad};
      T* pp = p.data<T>();
      const T* gp = grad.data<T>();
      T* mp = m.data<T>();
      T* vp = v.data<T>();
      T* xp = vmax.defined() ? vmax.data<T>() : nullptr;
      detail::parallel_chunks(p.numel(), [&](int64_t b, int64_t e) {
        adamw_kernel(pp + b, gp + b, mp + b, vp + b, xp ? xp + b : nullptr, e - b, s);
      });
    } else {
      RESIN_FAIL("AdamW: unsupported parameter dtype ", p.dtype());
    }
  });
}

}  // namespace resin::optim
