// Unary (eltwise) and binary elementwise kernels on oneDNN.
#include <optional>

#include "resin/backend/cpu/dnnl_util.h"
#include "resin/backend/cpu/native_kernels.h"

namespace resin::backend {
namespace {

using namespace onednn;
using dnnl::algorithm;
using dnnl::prop_kind;

struct Eltwise {
  algorithm alg;
  float alpha = 0, beta = 0;
};

// The oneDNN algorithm computing exactly resin's op, or nullopt where the semantics differ.
std::optional<Eltwise> eltwise_for(Unary op, UnaryParams p, bool backward) {
  const auto a = static_cast<float>(p.alpha), b = static_cast<float>(p.beta);
  switch (op) {
    case Unary::neg: return Eltwise{algorithm::eltwise_linear, -1.0f, 0.0f};
    case Unary::exp: return Eltwise{algorithm::eltwise_exp};
    case Unary::log: return Eltwise{algorithm::eltwise_log};
    case Unary::sqrt: return Eltwise{algorithm::eltwise_sqrt};
    case Unary::rsqrt: return Eltwise{algorithm::eltwise_pow, 1.0f, -0.5f};  // pow: alpha * x^beta
    case Unary::abs: return Eltwise{algorithm::eltwise_abs};
    case Unary::relu: return Eltwise{algorithm::eltwise_relu, 0.0f};
    case Unary::leaky_relu: return Eltwise{algorithm::eltwise_relu, a};
    case Unary::gelu: return Eltwise{algorithm::eltwise_gelu_erf};
    case Unary::gelu_tanh: return Eltwise{algorithm::eltwise_gelu_tanh};
    case Unary::sigmoid: return Eltwise{algorithm::eltwise_logistic};
    case Unary::tanh: return Eltwise{algorithm::eltwise_tanh};
    case Unary::softplus:
      // 2.6's soft_relu is log(1 + e^x) with no beta and no threshold; above x = 15 it equals x
      // (and its derivative 1) to f32 precision, so it matches beta = 1 with a threshold >= 15.
      if (p.alpha == 1.0 && p.beta >= 15.0) return Eltwise{algorithm::eltwise_soft_relu};
      return std::nullopt;
    case Unary::pow: return Eltwise{algorithm::eltwise_pow, 1.0f, a};
    case Unary::clamp:
      // clip's backward passes the gradient on (lo, hi]; resin's (PyTorch's) on [lo, hi].
      if (backward) return std::nullopt;
      return Eltwise{algorithm::eltwise_clip, a, b};
  }
  return std::nullopt;
}

Key eltwise_key(const char* op, const Eltwise& el, std::initializer_list<const Tensor*> ts) {
  Key k(op);
  k.add(static_cast<int64_t>(el.alg)).add(static_cast<double>(el.alpha)).add(static_cast<double>(el.beta));
  for (const Tensor* t : ts) k.add(*t);
  return k;
}

struct EltFwd {
  dnnl::eltwise_forward prim;
};

struct EltBwd {
  dnnl::eltwise_backward prim;
  Arg diff_dst;
};

std::optional<algorithm> binary_alg(Binary op) {
  switch (op) {
    case Binary::add: return algorithm::binary_add;
    case Binary::sub: return algorithm::binary_sub;
    case Binary::mul: return algorithm::binary_mul;
    case Binary::div: return algorithm::binary_div;
    case Binary::eq: return algorithm::binary_eq;
    case Binary::gt: return algorithm::binary_gt;
    case Binary::lt: return algorithm::binary_lt;
  }
  return std::nullopt;
}

// Operand b of a binary op as oneDNN's src1: dims of 1 where it was expanded (stride 0).
memory::desc broadcast_md(const Tensor& b) {
  Shape dims = b.shape();
  Strides st = b.strides();
  for (size_t d = 0; d < dims.size(); ++d)
    if (st[d] == 0) dims[d] = 1;
  if (dims.empty()) return md_of(b, Dims{1}, Dims{1});
  st = normalized_strides(dims, st);
  return md_of(b, Dims(dims.begin(), dims.end()), Dims(st.begin(), st.end()));
}

struct BinaryEntry {
  dnnl::binary prim;
  bool swap = false;  // a was the expanded operand: run as b op a (commutative ops only)
};

}  // namespace

void CpuBackend::unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) {
  if (op == Unary::relu && kernels::relu(x, out)) return onednn::detail::count_native();
  std::shared_ptr<EltFwd> e;
  const auto el = eltwise_for(op, p, false);
  // One descriptor serves src and dst, so x and out must share a layout.
  if (el && all_f32({&x, &out}) && x.numel() > 0 && !has_broadcast(x) &&
      normalized_strides(x) == normalized_strides(out))
    e = cached<EltFwd>(eltwise_key("eltwise_fwd", *el, {&x}), [&] {
      dnnl::eltwise_forward::desc d(prop_kind::forward_inference, el->alg, md_of(x), el->alpha, el->beta);
      return std::make_shared<EltFwd>(EltFwd{dnnl::eltwise_forward({d, engine()})});
    });
  if (!e) return RefBackend::unary(op, x, out, p);
  const memory::desc md = md_of(x);
  execute("unary", e->prim, {{DNNL_ARG_SRC, wrap(md, x)}, {DNNL_ARG_DST, wrap(md, out)}});
}

void CpuBackend::unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy,
                                const Tensor& gx, UnaryParams p) {
  // ReLU: oneDNN 2.6 multiplies gy by the 0/1 derivative, which passes a NaN gradient where the ReLU
  // was off; PyTorch (and resin) select 0 there. The own kernel selects; operands in other layouts
  // are copied to one dense layout for it (and the result back).
  if (op == Unary::relu && x.dtype() == DType::f32) {
    if (kernels::relu_backward(x, gy, Tensor(), gx)) return detail::count_native();
    Tensor xd = empty_like(gx), gd = empty_like(gx), od = empty_like(gx);
    copy(x, xd);
    copy(gy, gd);
    if (kernels::relu_backward(xd, gd, Tensor(), od)) {
      detail::count_native();
      return copy(od, gx);
    }
    return RefBackend::unary_backward(op, x, y, gy, gx, p);
  }
  std::shared_ptr<EltBwd> e;
  const auto el = eltwise_for(op, p, true);
  if (el && all_f32({&x, &gy, &gx}) && x.numel() > 0 && !has_broadcast(gx))
    e = cached<EltBwd>(eltwise_key("eltwise_bwd", *el, {&x, &gy, &gx}), [&] {
      const memory::desc xd = md_of(x), gxd = md_of(gx);
      dnnl::eltwise_forward::desc fd(prop_kind::forward_training, el->alg, xd, el->alpha, el->beta);
      dnnl::eltwise_forward::primitive_desc hint(fd, engine());
      // diff_src and diff_dst share one descriptor: gy is reordered into gx's layout if needed.
      dnnl::eltwise_backward::desc d(el->alg, gxd, xd, el->alpha, el->beta);
      dnnl::eltwise_backward::primitive_desc pd(d, engine(), hint);
      return std::make_shared<EltBwd>(
          EltBwd{dnnl::eltwise_backward(pd), Arg(md_of(gy), pd.diff_dst_desc(), false)});
    });
  if (!e) return RefBackend::unary_backward(op, x, y, gy, gx, p);
  Scratch s;
  execute("unary_backward", e->prim,
          {{DNNL_ARG_SRC, wrap(md_of(x), x)},
           {DNNL_ARG_DIFF_DST, e->diff_dst.in(gy, s)},
           {DNNL_ARG_DIFF_SRC, wrap(md_of(gx), gx)}});
}

void CpuBackend::binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (kernels::binary_scalar(op, a, b, out) || kernels::binary_packed(op, a, b, out))
    return onednn::detail::count_native();
  std::shared_ptr<BinaryEntry> e;
  const auto alg = binary_alg(op);
  if (alg && all_f32({&a, &b, &out}) && out.numel() > 0 && !has_broadcast(out) && a.shape() == out.shape() &&
      b.shape() == out.shape()) {
    Key k("binary");
    k.add(static_cast<int64_t>(*alg)).add(a).add(b).add(out);
    e = cached<BinaryEntry>(k, [&]() -> std::shared_ptr<BinaryEntry> {
      // oneDNN broadcasts src1 only: an expanded a goes second when the op commutes.
      const bool commutes = op == Binary::add || op == Binary::mul || op == Binary::eq;
      bool swap = false;
      if (has_broadcast(a)) {
        if (!commutes || has_broadcast(b)) return nullptr;
        swap = true;
      }
      const Tensor& s0 = swap ? b : a;
      const Tensor& s1 = swap ? a : b;
      dnnl::binary::desc d(*alg, md_of(s0), broadcast_md(s1), md_of(out));
      return std::make_shared<BinaryEntry>(BinaryEntry{dnnl::binary({d, engine()}), swap});
    });
  }
  if (!e) return RefBackend::binary(op, a, b, out);
  const Tensor& s0 = e->swap ? b : a;
  const Tensor& s1 = e->swap ? a : b;
  execute("binary", e->prim,
          {{DNNL_ARG_SRC_0, wrap(md_of(s0), s0)},
           {DNNL_ARG_SRC_1, wrap(broadcast_md(s1), s1)},
           {DNNL_ARG_DST, wrap(md_of(out), out)}});
}

}  // namespace resin::backend
