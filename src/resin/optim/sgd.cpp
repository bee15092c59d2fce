#include "resin/optim/sgd.h"

#include <cmath>

#include "resin/backend/cuda_fused.h"
#include "resin/optim/detail.h"

#include "resin/optim/fp_contract_off.h"  // last include: see the header

namespace resin::optim {

namespace {

template <class T>
struct SgdScalars {
  T weight_decay, momentum, one_minus_dampening, neg_lr;
  bool use_weight_decay, use_momentum, first, nesterov;
};

// torch computes d_p.add(param, alpha=wd), buf.mul_(m).add_(d_p, alpha=1-dampening),
// d_p.add(buf, alpha=m) and param.add_(d_p, alpha=-lr); its vectorised add-with-alpha is a fused
// multiply-add, hence std::fma at exactly those places and a separately rounded buf * m.
// The flags are template parameters and the scalars locals so that every variant vectorises.
template <bool kWeightDecay, bool kMomentum, bool kFirst, bool kNesterov, class T>
[[gnu::always_inline]] inline void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n,
                                            SgdScalars<T> s) {
  const T wd = s.weight_decay, momentum = s.momentum, keep = s.one_minus_dampening, neg_lr = s.neg_lr;
  for (int64_t k = 0; k < n; ++k) {
    T d = g[k];
    if constexpr (kWeightDecay) d = std::fma(p[k], wd, d);
    if constexpr (kMomentum) {
      T b;
      if constexpr (kFirst) b = d;
      else b = std::fma(d, keep, buf[k] * momentum);
      buf[k] = b;
      if constexpr (kNesterov) d = std::fma(b, momentum, d);
      else d = b;
    }
    p[k] = std::fma(d, neg_lr, p[k]);
  }
}

template <bool kWeightDecay, class T>
[[gnu::always_inline]] inline void sgd_momentum_variants(T* p, const T* g, T* buf, int64_t n, SgdScalars<T> s) {
  if (!s.use_momentum) return sgd_loop<kWeightDecay, false, false, false>(p, g, buf, n, s);
  if (s.first) {
    if (s.nesterov) return sgd_loop<kWeightDecay, true, true, true>(p, g, buf, n, s);
    return sgd_loop<kWeightDecay, true, true, false>(p, g, buf, n, s);
  }
  if (s.nesterov) return sgd_loop<kWeightDecay, true, false, true>(p, g, buf, n, s);
  return sgd_loop<kWeightDecay, true, false, false>(p, g, buf, n, s);
}

template <class T>
[[gnu::always_inline]] inline void sgd_variants(T* p, const T* g, T* buf, int64_t n, SgdScalars<T> s) {
  if (s.use_weight_decay) sgd_momentum_variants<true>(p, g, buf, n, s);
  else sgd_momentum_variants<false>(p, g, buf, n, s);
}

RESIN_OPTIM_KERNEL void sgd_kernel(float* p, const float* g, float* buf, int64_t n, SgdScalars<float> s) {
  sgd_variants(p, g, buf, n, s);
}
RESIN_OPTIM_KERNEL void sgd_kernel(double* p, const double* g, double* buf, int64_t n, SgdScalars<double> s) {
  sgd_variants(p, g, buf, n, s);
}

}  // namespace

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions o) : Optimizer("SGD", std::move(groups)), o_(o) {
  check_options();
}

void Sgd::check_options() const {
  RESIN_CHECK(o_.momentum >= 0, "SGD: invalid momentum ", o_.momentum);
  RESIN_CHECK(o_.dampening >= 0, "SGD: invalid dampening ", o_.dampening);
  RESIN_CHECK(!o_.nesterov || (o_.momentum > 0 && o_.dampening == 0),
              "SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum ", o_.momentum,
              " and dampening ", o_.dampening);
}

Sgd::Sgd(std::vector<Tensor> params, double lr, double weight_decay, SgdOptions o)
    : Sgd(std::vector<ParamGroup>{ParamGroup{.params = std::move(params), .lr = lr, .weight_decay = weight_decay}},
          o) {}

std::vector<std::string> Sgd::state_names() const {
  if (o_.momentum != 0) return {"momentum_buffer"};
  return {};
}

std::vector<Optimizer::OptionRef> Sgd::options() {
  return {{"momentum", &o_.momentum, nullptr},
          {"dampening", &o_.dampening, nullptr},
          {"nesterov", nullptr, &o_.nesterov}};
}

void Sgd::update(const ParamGroup& group, const Tensor& p, const Tensor& grad, ParamState& state) {
  const bool use_momentum = o_.momentum != 0;
  Tensor buf;
  bool first = false;
  if (use_momentum) {
    auto it = state.find("momentum_buffer");
    first = it == state.end();
    buf = first ? (state["momentum_buffer"] = empty_like(p)) : it->second;
  }
  if (p.device().type == DeviceType::cuda) {
    backend::cuda_fused::sgd_update(p, grad, buf,
                                    {group.weight_decay, o_.momentum, 1.0 - o_.dampening, -group.lr,
                                     group.weight_decay != 0, use_momentum, first, o_.nesterov});
    return;
  }
  dispatch_dtype(p.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      // Scalars are formed in double (Python) and cast to the tensor dtype, as torch does.
      const SgdScalars<T> s{static_cast<T>(group.weight_decay), static_cast<T>(o_.momentum),
                            static_cast<T>(1.0 - o_.dampening), static_cast<T>(-group.lr),
                            group.weight_decay != 0, use_momentum, first, o_.nesterov};
      T* pp = p.data<T>();
      const T* gp = grad.data<T>();
      T* bp = use_momentum ? buf.data<T>() : nullptr;
      detail::parallel_chunks(p.numel(), [&](int64_t b, int64_t e) {
        sgd_kernel(pp + b, gp + b, bp ? bp + b : nullptr, e - b, s);
      });
    } else {
      RESIN_FAIL("SGD: unsupported parameter dtype ", p.dtype());
    }
  });
}

}  // namespace resin::optim
