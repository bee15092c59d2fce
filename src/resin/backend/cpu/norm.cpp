// Batch normalisation and layer normalisation: training batch norm of dense NCHW/NHWC/packed tensors
// and inference batch norm of packed ones on resin's own kernels (native_kernels.h), everything else
// on oneDNN.
//
// oneDNN 2.6 flags: use_scale / use_shift (separate scale and shift memories; the older packed
// use_scale_shift is not used). Backward always runs as prop_kind::backward with use_scale (ones
// when there is no gamma) | use_shift: diff_scale = sum(gy * xhat) and diff_shift = sum(gy) are
// what diff_src needs anyway, so unwanted ones go to scratch (2.6 rejects backward_data with these
// flags).
#include <cmath>

#include "resin/backend/cpu/native_kernels.h"
#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {
namespace {

using namespace onednn;
using dnnl::normalization_flags;
using dnnl::prop_kind;

// A 1-D [n] parameter or statistic oneDNN can read in place (it takes no strides for these).
bool dense_vec(const Tensor& t, int64_t n) {
  return t.defined() && t.dim() == 1 && t.size(0) == n && (t.stride(0) == 1 || n == 1);
}

normalization_flags flags_for(bool scale, bool shift) {
  auto f = normalization_flags::none;
  if (scale) f |= normalization_flags::use_scale;
  if (shift) f |= normalization_flags::use_shift;
  return f;
}

// `n` ones in scratch: the scale when there is no gamma (a parameter-sized loop, not worth OpenMP).
void* ones(Scratch& s, int64_t n) {
  auto* p = static_cast<float*>(s.get(static_cast<size_t>(n) * sizeof(float)));
  for (int64_t i = 0; i < n; ++i) p[i] = 1.0f;
  return p;
}

const normalization_flags kBwdFlags = normalization_flags::use_scale | normalization_flags::use_shift;

// Output memory for a tensor that may be undefined (its result is then dropped into scratch).
memory out_or_scratch(const Arg& a, const Tensor& t, Scratch& s) {
  return t.defined() ? a.out(t, s) : wrap(a.want, s.get(a.want.get_size()));
}
void done_if(const Arg& a, const memory& m, const Tensor& t) {
  if (t.defined()) a.out_done(m, t);
}

// ---- batch norm

struct BnFwd {
  dnnl::batch_normalization_forward prim;
  Arg dst;
};

std::shared_ptr<BnFwd> make_bn_fwd(prop_kind kind, const Tensor& x, const Tensor& y, normalization_flags f,
                                   double eps) {
  const memory::desc xu = md_of(x);
  dnnl::batch_normalization_forward::desc d(kind, xu, static_cast<float>(eps), f);
  dnnl::batch_normalization_forward::primitive_desc pd(d, engine());
  return std::make_shared<BnFwd>(
      BnFwd{dnnl::batch_normalization_forward(pd), Arg(md_of(y), pd.dst_desc(), true)});
}

Key bn_key(const char* op, std::initializer_list<const Tensor*> ts, double eps) {
  Key k(op);
  for (const Tensor* t : ts) k.add(*t);
  return k.add(eps);
}

struct BnBwd {
  dnnl::batch_normalization_backward prim;
  Arg diff_dst, diff_src;
};

std::shared_ptr<BnBwd> make_bn_bwd(const Tensor& x, const Tensor& gy, const Tensor& gx, double eps) {
  const memory::desc xu = md_of(x);
  const auto f = kBwdFlags;
  dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, xu, static_cast<float>(eps), f);
  dnnl::batch_normalization_forward::primitive_desc hint(fd, engine());
  dnnl::batch_normalization_backward::desc d(prop_kind::backward, xu, xu, static_cast<float>(eps), f);
  dnnl::batch_normalization_backward::primitive_desc pd(d, engine(), hint);
  auto e = std::make_shared<BnBwd>();
  e->prim = dnnl::batch_normalization_backward(pd);
  e->diff_dst = Arg(md_of(gy), pd.diff_dst_desc(), false);
  e->diff_src = Arg(gx.defined() ? md_of(gx) : pd.diff_src_desc(), pd.diff_src_desc(), true);
  return e;
}

bool bn_usable(const Tensor& x, std::initializer_list<const Tensor*> vecs,
               std::initializer_list<const Tensor*> ts) {
  if (x.dim() != 4 || x.numel() == 0 || !all_f32(ts) || !all_f32(vecs) || has_broadcast(x)) return false;
  for (const Tensor* v : vecs)
    if (v->defined() && !dense_vec(*v, x.size(1))) return false;
  return true;
}

// ---- layer norm

struct LnFwd {
  dnnl::layer_normalization_forward prim;
};

struct LnBwd {
  dnnl::layer_normalization_backward prim;
};

memory::desc stat_md(int64_t m) { return dense_md({m}); }

bool ln_usable(const Tensor& x, std::initializer_list<const Tensor*> mats,
               std::initializer_list<const Tensor*> vecs) {
  if (x.dim() != 2 || x.numel() == 0 || !all_f32(mats) || !all_f32(vecs)) return false;
  for (const Tensor* t : mats)
    if (t->defined() && (t->shape() != x.shape() || !t->is_contiguous())) return false;
  return true;  // callers check each vector's length against x
}

}  // namespace

// Executes a batch-norm forward primitive (training: mean/var are outputs; inference: inputs).
static void run_bn_forward(BnFwd& e, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                           const Tensor& mean, const Tensor& var, const Tensor& y) {
  Scratch s;
  const memory::desc c = stat_md(x.size(1));
  memory dst = e.dst.out(y, s);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(md_of(x), x)},
                                       {DNNL_ARG_DST, dst},
                                       {DNNL_ARG_MEAN, wrap(c, mean)},
                                       {DNNL_ARG_VARIANCE, wrap(c, var)}};
  if (gamma.defined()) args.emplace(DNNL_ARG_SCALE, wrap(c, gamma));
  if (beta.defined()) args.emplace(DNNL_ARG_SHIFT, wrap(c, beta));
  execute("batch_norm", e.prim, args);
  e.dst.out_done(dst, y);
}

void CpuBackend::batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                             const Tensor& y, const Tensor& mean, const Tensor& var,
                                             double eps) {
  if (kernels::batch_norm_training(x, gamma, beta, y, mean, var, eps)) return onednn::detail::count_native();
  std::shared_ptr<BnFwd> e;
  if (bn_usable(x, {&gamma, &beta, &mean, &var}, {&x, &y}) && mean.defined() && var.defined()) {
    const auto f = flags_for(gamma.defined(), beta.defined());
    e = cached<BnFwd>(bn_key("bn_fwd_train", {&x, &y, &gamma, &beta}, eps),
                      [&] { return make_bn_fwd(prop_kind::forward_training, x, y, f, eps); });
  }
  if (!e) return RefBackend::batch_norm_forward_training(x, gamma, beta, y, mean, var, eps);
  run_bn_forward(*e, x, gamma, beta, mean, var, y);
}

void CpuBackend::batch_norm_forward_inference(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                              const Tensor& mean, const Tensor& var, const Tensor& y,
                                              double eps) {
  if (kernels::batch_norm_inference_packed(x, gamma, beta, mean, var, y, eps))
    return onednn::detail::count_native();
  std::shared_ptr<BnFwd> e;
  if (bn_usable(x, {&gamma, &beta, &mean, &var}, {&x, &y}) && mean.defined() && var.defined()) {
    const auto f = flags_for(gamma.defined(), beta.defined()) | normalization_flags::use_global_stats;
    e = cached<BnFwd>(bn_key("bn_fwd_infer", {&x, &y, &gamma, &beta}, eps),
                      [&] { return make_bn_fwd(prop_kind::forward_inference, x, y, f, eps); });
  }
  if (!e) return RefBackend::batch_norm_forward_inference(x, gamma, beta, mean, var, y, eps);
  run_bn_forward(*e, x, gamma, beta, mean, var, y);
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& var,
                                     const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                                     const Tensor& gbeta, double eps) {
  if (kernels::batch_norm_backward(x, gy, mean, var, gamma, gx, ggamma, gbeta, eps))
    return onednn::detail::count_native();
  std::shared_ptr<BnBwd> e;
  const bool params = ggamma.defined() || gbeta.defined();
  if (bn_usable(x, {&gamma, &ggamma, &gbeta, &mean, &var}, {&x, &gy, &gx}) && mean.defined() &&
      var.defined() && (gx.defined() || params))
    e = cached<BnBwd>(bn_key("bn_bwd", {&x, &gy, &gx, &ggamma, &gbeta}, eps),
                      [&] { return make_bn_bwd(x, gy, gx, eps); });
  if (!e) return RefBackend::batch_norm_backward(x, gy, mean, var, gamma, gx, ggamma, gbeta, eps);
  Scratch s;
  const int64_t C = x.size(1);
  const memory::desc c = stat_md(C);
  memory diff_src = out_or_scratch(e->diff_src, gx, s);
  const memory scale = gamma.defined() ? wrap(c, gamma) : wrap(c, ones(s, C));
  // With use_shift oneDNN insists on a shift argument even though backward never reads it.
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, wrap(md_of(x), x)}, {DNNL_ARG_DIFF_DST, e->diff_dst.in(gy, s)},
      {DNNL_ARG_MEAN, wrap(c, mean)},    {DNNL_ARG_VARIANCE, wrap(c, var)},
      {DNNL_ARG_SCALE, scale},           {DNNL_ARG_DIFF_SRC, diff_src}};
  args.emplace(DNNL_ARG_SHIFT, scale);  // demanded with use_shift, never read by backward
  args.emplace(DNNL_ARG_DIFF_SCALE, ggamma.defined() ? wrap(c, ggamma) : wrap(c, s.get(c.get_size())));
  args.emplace(DNNL_ARG_DIFF_SHIFT, gbeta.defined() ? wrap(c, gbeta) : wrap(c, s.get(c.get_size())));
  execute("batch_norm_backward", e->prim, args);
  done_if(e->diff_src, diff_src, gx);
}

void CpuBackend::batch_norm_relu_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                  const Tensor& y, const Tensor& mean, const Tensor& var,
                                                  double eps) {
  if (kernels::batch_norm_training(x, gamma, beta, y, mean, var, eps, true)) return onednn::detail::count_native();
  Backend::batch_norm_relu_forward_training(x, gamma, beta, y, mean, var, eps);
}

void CpuBackend::batch_norm_relu_backward(const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& mean,
                                          const Tensor& var, const Tensor& gamma, const Tensor& gx,
                                          const Tensor& ggamma, const Tensor& gbeta, double eps) {
  if (kernels::batch_norm_backward(x, gy, mean, var, gamma, gx, ggamma, gbeta, eps, y))
    return onednn::detail::count_native();
  Backend::batch_norm_relu_backward(x, y, gy, mean, var, gamma, gx, ggamma, gbeta, eps);
}

void CpuBackend::add_relu(const Tensor& a, const Tensor& b, const Tensor& y) {
  if (kernels::add_relu(a, b, y)) return onednn::detail::count_native();
  Backend::add_relu(a, b, y);
}

void CpuBackend::add_relu_backward(const Tensor& y, const Tensor& g1, const Tensor& g2, const Tensor& gx) {
  if (kernels::relu_backward(y, g1, g2, gx)) return onednn::detail::count_native();
  Backend::add_relu_backward(y, g1, g2, gx);
}

void CpuBackend::layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                    const Tensor& mean, const Tensor& rstd, double eps) {
  std::shared_ptr<LnFwd> e;
  if (ln_usable(x, {&x, &y}, {&gamma, &beta, &mean, &rstd}) && y.defined() && dense_vec(mean, x.size(0)) &&
      dense_vec(rstd, x.size(0)) && (!gamma.defined() || dense_vec(gamma, x.size(1))) &&
      (!beta.defined() || dense_vec(beta, x.size(1)))) {
    Key k("ln_fwd");
    k.add(x).add(gamma.defined()).add(beta.defined()).add(eps);
    e = cached<LnFwd>(k, [&] {
      dnnl::layer_normalization_forward::desc d(prop_kind::forward_training, md_of(x), stat_md(x.size(0)),
                                                static_cast<float>(eps),
                                                flags_for(gamma.defined(), beta.defined()));
      return std::make_shared<LnFwd>(LnFwd{
          dnnl::layer_normalization_forward(dnnl::layer_normalization_forward::primitive_desc(d, engine()))});
    });
  }
  if (!e) return RefBackend::layer_norm_forward(x, gamma, beta, y, mean, rstd, eps);
  Scratch s;
  const int64_t M = x.size(0);
  const memory::desc xd = md_of(x), m = stat_md(M), n = stat_md(x.size(1));
  auto* var = static_cast<float*>(s.get(m.get_size()));
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(xd, x)},
                                       {DNNL_ARG_DST, wrap(xd, y)},
                                       {DNNL_ARG_MEAN, wrap(m, mean)},
                                       {DNNL_ARG_VARIANCE, wrap(m, var)}};
  if (gamma.defined()) args.emplace(DNNL_ARG_SCALE, wrap(n, gamma));
  if (beta.defined()) args.emplace(DNNL_ARG_SHIFT, wrap(n, beta));
  execute("layer_norm", e->prim, args);
  // resin stores rstd, oneDNN outputs the variance: one value per row, so a plain loop.
  float* r = rstd.data<float>();
  for (int64_t i = 0; i < M; ++i) r[i] = 1.0f / std::sqrt(var[i] + static_cast<float>(eps));
}

void CpuBackend::layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& gamma, const Tensor& gx,
                                     const Tensor& ggamma, const Tensor& gbeta) {
  std::shared_ptr<LnBwd> e;
  const bool params = ggamma.defined() || gbeta.defined();
  const int64_t M = x.size(0), N = x.dim() == 2 ? x.size(1) : 0;
  if (ln_usable(x, {&x, &gy, &gx}, {&gamma, &ggamma, &gbeta, &mean, &rstd}) && gy.defined() &&
      dense_vec(mean, M) && dense_vec(rstd, M) && (gx.defined() || params) &&
      (!gamma.defined() || dense_vec(gamma, N)) && (!ggamma.defined() || dense_vec(ggamma, N)) &&
      (!gbeta.defined() || dense_vec(gbeta, N))) {
    Key k("ln_bwd");
    k.add(x);
    e = cached<LnBwd>(k, [&] {
      // The interface passes rstd and no eps: hand oneDNN variance = 1/rstd^2 with eps = 0.
      const memory::desc xd = md_of(x), m = stat_md(M);
      const auto f = kBwdFlags;
      dnnl::layer_normalization_forward::desc fd(prop_kind::forward_training, xd, m, 0.0f, f);
      dnnl::layer_normalization_forward::primitive_desc hint(fd, engine());
      dnnl::layer_normalization_backward::desc d(prop_kind::backward, xd, xd, m, 0.0f, f);
      return std::make_shared<LnBwd>(LnBwd{dnnl::layer_normalization_backward(
          dnnl::layer_normalization_backward::primitive_desc(d, engine(), hint))});
    });
  }
  if (!e) return RefBackend::layer_norm_backward(x, gy, mean, rstd, gamma, gx, ggamma, gbeta);
  Scratch s;
  const memory::desc xd = md_of(x), m = stat_md(M), n = stat_md(N);
  auto* var = static_cast<float*>(s.get(m.get_size()));
  const float* r = rstd.data<float>();
  for (int64_t i = 0; i < M; ++i) var[i] = 1.0f / (r[i] * r[i]);  // per row, a plain loop
  const memory scale = gamma.defined() ? wrap(n, gamma) : wrap(n, ones(s, N));
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, wrap(xd, x)},
      {DNNL_ARG_DIFF_DST, wrap(xd, gy)},
      {DNNL_ARG_MEAN, wrap(m, mean)},
      {DNNL_ARG_VARIANCE, wrap(m, var)},
      {DNNL_ARG_SCALE, scale},
      {DNNL_ARG_DIFF_SRC, gx.defined() ? wrap(xd, gx) : wrap(xd, s.get(xd.get_size()))}};
  args.emplace(DNNL_ARG_SHIFT, scale);  // demanded with use_shift, never read by backward
  args.emplace(DNNL_ARG_DIFF_SCALE, ggamma.defined() ? wrap(n, ggamma) : wrap(n, s.get(n.get_size())));
  args.emplace(DNNL_ARG_DIFF_SHIFT, gbeta.defined() ? wrap(n, gbeta) : wrap(n, s.get(n.get_size())));
  execute("layer_norm_backward", e->prim, args);
}

}  // namespace resin::backend
