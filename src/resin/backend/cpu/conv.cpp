// Convolution forward, backward-data and backward-weights on oneDNN.
//
// Each call looks up (or builds) an entry holding the primitive and one Arg per operand; an Arg
// reorders only when the layout oneDNN wants differs from the tensor's. Layout choice: see
// cpu_backend.h (the tensors' own layouts when oneDNN has a fast kernel for them, else `any`).
//
// bf16 autocast (compute_type() == bf16): the primitive reads src, weights and diff_dst in bf16 and
// writes dst, diff_src, diff_weights and diff_bias in f32 (bias stays f32). The f32 -> bf16
// conversion is the Arg's reorder, fused with any layout change. No Winograd (oneDNN 2.6 has no
// bf16 Winograd). A shape without a fast bf16 kernel keeps its f32 primitive. Which passes run in
// bf16, and in which layouts: Bf16Policy (cpu_backend.h).
//
// Packed activations (tensor/packing.h): an f32 pass whose kernel wants nChw16c activations reads
// packed inputs as they are and leaves its outputs packed (Arg). Its strided inputs are packed in
// place only when its output is packed as well (a Winograd layer between packed-aware ops); a
// direct kernel that happens to want nChw16c between strided ops (DenseNet's concatenations) keeps
// reordering into scratch, where packing would be undone by the next strided reader.
#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {
namespace {

using namespace onednn;
using dnnl::algorithm;
using dnnl::prop_kind;
using dt = memory::data_type;

// The forward primitive descriptor for activations described by src/dst (user layouts or `any`).
dnnl::convolution_forward::primitive_desc fwd_pd(const memory::desc& src, const memory::desc& wei,
                                                 const memory::desc& bias, const memory::desc& dst,
                                                 const ConvGeometry& g, algorithm alg) {
  dnnl::convolution_forward::desc d(prop_kind::forward_training, alg, src, any_md(wei), bias, dst, g.strides,
                                    g.dilates, g.pad_l, g.pad_r);
  return {d, engine()};
}

// Builds pd for the user layouts; if oneDNN offers only a slow kernel there, rebuilds it with `any`
// activations. make(src, dst) returns a primitive descriptor.
template <class Make>
auto choose_direct(const memory::desc& src, const memory::desc& dst, Make&& make) {
  std::optional<decltype(make(src, dst))> user;
  try {
    user = make(src, dst);
    if (is_fast_impl(*user)) return *user;
  } catch (const dnnl::error&) {
  }
  try {
    auto blocked = make(any_md(src), any_md(dst));
    if (!user || is_fast_impl(blocked)) return blocked;
  } catch (const dnnl::error&) {
    if (!user) throw;
  }
  return *user;
}

// With `winograd`, first asks for oneDNN's Winograd kernel (blocked activations, so they are
// reordered); when there is none, or without `winograd`, builds pd for the user layouts and, if
// oneDNN offers only a slow kernel there, rebuilds it with `any` activations.
// make(src, dst, alg) returns a primitive descriptor.
template <class Make>
auto choose_pd(const memory::desc& src, const memory::desc& dst, bool winograd, Make&& make) {
  if (winograd) {
    try {
      auto pd = make(any_md(src), any_md(dst), algorithm::convolution_winograd);
      if (std::string(pd.impl_info_str()).find("wino") != std::string::npos) return pd;
    } catch (const dnnl::error&) {
    }
  }
  return choose_direct(src, dst, [&](const memory::desc& s, const memory::desc& d) {
    return make(s, d, algorithm::convolution_direct);
  });
}

// The per-pass policy: each pass's pair {compute in bf16, ask for blocked layouts first}.
bool bf16_blocked(const char* pass) {
  const Bf16Policy p = CpuBackend::bf16_policy();
  return pass[0] == 'f' ? p.fwd_blocked : pass[4] == 'd' ? p.bwd_data_blocked : p.bwd_weights_blocked;
}

// Whether this pass computes in bf16 now (autocast on, native bf16, and the pass enabled).
bool bf16_pass(const char* pass) {
  if (compute_type() != dt::bf16) return false;
  const Bf16Policy p = CpuBackend::bf16_policy();
  return pass[0] == 'f' ? p.fwd : pass[4] == 'd' ? p.bwd_data : p.bwd_weights;
}

// pass: "fwd", "bwd_data" or "bwd_weights"; bf16: the pass computes in bf16 (its layout policy is part
// of the key too, so changing the policy builds new entries).
Key conv_key(const char* pass, const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& d,
             const Conv2dParams& p, bool bf16) {
  Key k(pass);
  k.add(a).add(b).add(c).add(d).add(bf16 ? (bf16_blocked(pass) ? 2 : 1) : 0);
  for (int64_t v : {p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups}) k.add(v);
  return k;
}

// The activation descriptor of type t a primitive is first asked for: the tensor's own layout, or
// `any` in a bf16 pass the Bf16Policy marks blocked.
memory::desc act_md(const memory::desc& user, dt t, bool bf16, const char* pass) {
  const memory::desc m = retype(user, t);
  return bf16 && bf16_blocked(pass) ? any_md(m) : m;
}

// Whether an entry's activations take part in packing (tensor/packing.h): f32 passes only. A bf16
// pass converts its inputs to bf16 anyway (the conversion reorder does any layout change with it),
// and packed f32 outputs there measured slower end to end (ResNet-56 bf16 step 550 -> 580-670 ms).
bool packs(bool bf16) { return !bf16; }

// ---- forward

struct ConvFwd {
  dnnl::convolution_forward prim;
  Arg src, wei, bias, dst;
  bool bf16 = false;
};

std::shared_ptr<ConvFwd> make_fwd(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& y,
                                  const Conv2dParams& p, bool bf16) {
  const ConvGeometry g = conv_geometry(p);
  const dt ct = bf16 ? dt::bf16 : dt::f32;
  const memory::desc xu = md_of(x), wu = weights_md(w, p.groups), yu = md_of(y);
  const memory::desc bu = b.defined() ? md_of(b) : memory::desc();
  const memory::desc bw = b.defined() ? dense_md({y.size(1)}) : memory::desc();
  const bool wino = !bf16 && want_winograd(x.size(1), w.size(0), w.size(2), w.size(3), p);
  const memory::desc xa = act_md(xu, ct, bf16, "fwd"), ya = act_md(yu, dt::f32, bf16, "fwd");
  auto pd = choose_pd(xa, ya, wino, [&](const memory::desc& s, const memory::desc& d, algorithm alg) {
    return fwd_pd(s, retype(wu, ct), bw, d, g, alg);
  });
  if (bf16 && !is_fast_impl(pd)) return nullptr;
  auto e = std::make_shared<ConvFwd>();
  e->prim = dnnl::convolution_forward(pd);
  e->src = Arg(xu, pd.src_desc(), false, packs(bf16));
  e->wei = Arg(wu, pd.weights_desc(), false);
  if (b.defined()) e->bias = Arg(bu, pd.bias_desc(), false);
  e->dst = Arg(yu, pd.dst_desc(), true, packs(bf16));
  e->bf16 = bf16;
  return e;
}

// ---- backward data

struct ConvBwdData {
  dnnl::convolution_backward_data prim;
  Arg diff_dst, wei, diff_src;
  bool bf16 = false;
};

std::shared_ptr<ConvBwdData> make_bwd_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                           const Conv2dParams& p, bool bf16) {
  const ConvGeometry g = conv_geometry(p);
  const dt ct = bf16 ? dt::bf16 : dt::f32;
  const memory::desc gyu = md_of(gy), wu = weights_md(w, p.groups), gxu = md_of(gx);
  const memory::desc wc = retype(wu, ct);
  const bool wino = !bf16 && want_winograd(gx.size(1), w.size(0), w.size(2), w.size(3), p);
  const memory::desc gxa = act_md(gxu, dt::f32, bf16, "bwd_data"), gya = act_md(gyu, ct, bf16, "bwd_data");
  auto pd = choose_pd(gxa, gya, wino, [&](const memory::desc& s, const memory::desc& d, algorithm alg) {
    dnnl::convolution_backward_data::desc bd(alg, s, any_md(wc), d, g.strides, g.dilates, g.pad_l, g.pad_r);
    // The forward hint reads its src in the compute type (diff_src s is f32 under bf16).
    return dnnl::convolution_backward_data::primitive_desc(
        bd, engine(), fwd_pd(retype(s, ct), wc, memory::desc(), d, g, alg));
  });
  if (bf16 && !is_fast_impl(pd)) return nullptr;
  auto e = std::make_shared<ConvBwdData>();
  e->prim = dnnl::convolution_backward_data(pd);
  e->diff_dst = Arg(gyu, pd.diff_dst_desc(), false, packs(bf16));
  e->wei = Arg(wu, pd.weights_desc(), false);
  e->diff_src = Arg(gxu, pd.diff_src_desc(), true, packs(bf16));
  e->bf16 = bf16;
  return e;
}

// ---- backward weights

struct ConvBwdWeights {
  dnnl::convolution_backward_weights prim;
  Arg src, diff_dst, diff_wei, diff_bias;
  bool bf16 = false;
};

std::shared_ptr<ConvBwdWeights> make_bwd_weights(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                                 const Tensor& gb, const Conv2dParams& p, bool bf16) {
  const ConvGeometry g = conv_geometry(p);
  const dt ct = bf16 ? dt::bf16 : dt::f32;
  const memory::desc xu = md_of(x), gyu = md_of(gy), gwu = weights_md(gw, p.groups);
  const memory::desc bu = gb.defined() ? md_of(gb) : memory::desc();
  const memory::desc bw = gb.defined() ? dense_md({gy.size(1)}) : memory::desc();
  const bool wino = !bf16 && want_winograd(x.size(1), gw.size(0), gw.size(2), gw.size(3), p);
  const memory::desc xa = act_md(xu, ct, bf16, "bwd_weights"), gya = act_md(gyu, ct, bf16, "bwd_weights");
  auto pd = choose_pd(xa, gya, wino, [&](const memory::desc& s, const memory::desc& d, algorithm alg) {
    dnnl::convolution_backward_weights::desc bd(alg, s, any_md(gwu), bw, d, g.strides, g.dilates, g.pad_l,
                                                g.pad_r);
    return dnnl::convolution_backward_weights::primitive_desc(bd, engine(),
                                                              fwd_pd(s, retype(gwu, ct), bw, d, g, alg));
  });
  if (bf16 && !is_fast_impl(pd)) return nullptr;
  auto e = std::make_shared<ConvBwdWeights>();
  e->prim = dnnl::convolution_backward_weights(pd);
  e->src = Arg(xu, pd.src_desc(), false, packs(bf16));
  e->diff_dst = Arg(gyu, pd.diff_dst_desc(), false, packs(bf16));
  e->diff_wei = Arg(gwu, pd.diff_weights_desc(), true);
  if (gb.defined()) e->diff_bias = Arg(bu, pd.diff_bias_desc(), true);
  e->bf16 = bf16;
  return e;
}

bool usable(std::initializer_list<const Tensor*> ts) {
  if (!all_f32(ts)) return false;
  for (const Tensor* t : ts)
    if (t->defined() && t->numel() == 0) return false;
  return true;
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                                const Conv2dParams& p) {
  std::shared_ptr<ConvFwd> e;
  const bool bf16 = bf16_pass("fwd");
  if (usable({&x, &w, &bias, &y}))
    e = cached<ConvFwd>(conv_key("fwd", x, w, bias, y, p, bf16), [&] {
      return bf16_or_f32(bf16, [&](bool b) { return make_fwd(x, w, bias, y, p, b); });
    });
  if (!e) return RefBackend::conv2d_forward(x, w, bias, y, p);
  if (e->bf16) detail::count_bf16();
  Scratch s;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e->src.in(x, s, e->dst.writes_packed(y))},
                                       {DNNL_ARG_WEIGHTS, e->wei.in(w, s)}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, e->bias.in(bias, s));
  memory dst = e->dst.out(y, s);
  args.emplace(DNNL_ARG_DST, dst);
  execute("conv2d", e->prim, args);
  e->dst.out_done(dst, y);
}

namespace {

std::shared_ptr<ConvBwdData> bwd_data_entry(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                            const Conv2dParams& p) {
  if (!usable({&gy, &w, &gx})) return nullptr;
  const bool bf16 = bf16_pass("bwd_data");
  return cached<ConvBwdData>(conv_key("bwd_data", gy, w, gx, Tensor(), p, bf16), [&] {
    return bf16_or_f32(bf16, [&](bool b) { return make_bwd_data(gy, w, gx, p, b); });
  });
}

std::shared_ptr<ConvBwdWeights> bwd_weights_entry(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                                  const Tensor& gb, const Conv2dParams& p) {
  if (!usable({&x, &gy, &gw, &gb})) return nullptr;
  const bool bf16 = bf16_pass("bwd_weights");
  return cached<ConvBwdWeights>(conv_key("bwd_weights", x, gy, gw, gb, p, bf16), [&] {
    return bf16_or_f32(bf16, [&](bool b) { return make_bwd_weights(x, gy, gw, gb, p, b); });
  });
}

// diff_dst is gy itself or (staged) a reordered copy the caller made.
void run_bwd_data(const ConvBwdData& e, const memory& diff_dst, const Tensor& w, const Tensor& gx, Scratch& s) {
  memory diff_src = e.diff_src.out(gx, s);
  if (e.bf16) detail::count_bf16();
  execute("conv2d_backward_data", e.prim,
          {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, e.wei.in(w, s)}, {DNNL_ARG_DIFF_SRC, diff_src}});
  e.diff_src.out_done(diff_src, gx);
}

void run_bwd_weights(const ConvBwdWeights& e, const Tensor& x, const memory& diff_dst, const Tensor& gw,
                     const Tensor& gb, Scratch& s) {
  memory diff_wei = e.diff_wei.out(gw, s);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, e.src.in(x, s)}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_wei}};
  memory diff_bias;
  if (gb.defined()) {
    diff_bias = e.diff_bias.out(gb, s);
    args.emplace(DNNL_ARG_DIFF_BIAS, diff_bias);
  }
  if (e.bf16) detail::count_bf16();
  execute("conv2d_backward_weights", e.prim, args);
  e.diff_wei.out_done(diff_wei, gw);
  if (gb.defined()) e.diff_bias.out_done(diff_bias, gb);
}

}  // namespace

void CpuBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                      const Conv2dParams& p) {
  auto e = bwd_data_entry(gy, w, gx, p);
  if (!e) return RefBackend::conv2d_backward_data(gy, w, gx, p);
  Scratch s;
  run_bwd_data(*e, e->diff_dst.in(gy, s, e->diff_src.writes_packed(gx)), w, gx, s);
}

void CpuBackend::conv2d_backward_weights(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                         const Tensor& gb, const Conv2dParams& p) {
  auto e = bwd_weights_entry(x, gy, gw, gb, p);
  if (!e) return RefBackend::conv2d_backward_weights(x, gy, gw, gb, p);
  Scratch s;
  run_bwd_weights(*e, x, e->diff_dst.in(gy, s), gw, gb, s);
}

// Both gradients: when the two primitives want gy in the same (blocked) layout, it is reordered once.
void CpuBackend::conv2d_backward(const Tensor& x, const Tensor& gy, const Tensor& w, const Tensor& gx,
                                 const Tensor& gw, const Tensor& gb, const Conv2dParams& p) {
  auto ed = gx.defined() ? bwd_data_entry(gy, w, gx, p) : nullptr;
  auto ew = gw.defined() ? bwd_weights_entry(x, gy, gw, gb, p) : nullptr;
  if (!ed || !ew) return Backend::conv2d_backward(x, gy, w, gx, gw, gb, p);
  Scratch s;
  const memory gy_d = ed->diff_dst.in(gy, s, ed->diff_src.writes_packed(gx));
  run_bwd_data(*ed, gy_d, w, gx, s);
  run_bwd_weights(*ew, x, ew->diff_dst.want == ed->diff_dst.want ? gy_d : ew->diff_dst.in(gy, s), gw, gb, s);
}

}  // namespace resin::backend
