// Reduction, softmax / log-softmax, concat, copy (reorder) and fill on oneDNN.
#include <algorithm>

#include "resin/backend/cpu/dnnl_util.h"
#include "resin/backend/cpu/native_kernels.h"

namespace resin::backend {
namespace {

using namespace onednn;
using dnnl::algorithm;
using dnnl::prop_kind;

algorithm reduction_alg(Reduce op) {
  switch (op) {
    case Reduce::sum: return algorithm::reduction_sum;
    case Reduce::mean: return algorithm::reduction_mean;
    case Reduce::max: return algorithm::reduction_max;
    case Reduce::min: return algorithm::reduction_min;
  }
  return algorithm::reduction_sum;
}

struct Prim {
  dnnl::primitive prim;
};

// softmax_v2 (2.6) covers softmax and log-softmax (softmax_accurate / softmax_log) and, unlike
// softmax_forward / logsoftmax_forward, takes separate src and dst descriptors.
algorithm softmax_alg(bool log) { return log ? algorithm::softmax_log : algorithm::softmax_accurate; }

struct ConcatEntry {
  dnnl::concat prim;
  std::vector<size_t> inputs;  // indices of the non-empty inputs, in order
};

}  // namespace

void CpuBackend::reduce(Reduce op, const Tensor& x, const Tensor& out) {
  if (all_f32({&x, &out}) && x.shape() == out.shape()) return copy(x, out);  // nothing to fold
  if (kernels::reduce_leading(op, x, out)) return onednn::detail::count_native();
  std::shared_ptr<Prim> e;
  if (all_f32({&x, &out}) && x.numel() > 0 && x.dim() == out.dim() && !has_broadcast(x) &&
      !has_broadcast(out)) {
    Key k("reduce");
    k.add(static_cast<int64_t>(op)).add(x).add(out);
    e = cached<Prim>(k, [&] {
      dnnl::reduction::desc d(reduction_alg(op), md_of(x), md_of(out), 0.0f, 0.0f);
      return std::make_shared<Prim>(Prim{dnnl::reduction({d, engine()})});
    });
  }
  if (!e) return RefBackend::reduce(op, x, out);
  execute("reduce", e->prim, {{DNNL_ARG_SRC, wrap(md_of(x), x)}, {DNNL_ARG_DST, wrap(md_of(out), out)}});
}

void CpuBackend::softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) {
  std::shared_ptr<Prim> e;
  if (all_f32({&x, &y}) && x.dim() > 0 && x.numel() > 0 && !has_broadcast(y)) {
    Key k("softmax_fwd");
    k.add(log).add(dim).add(x).add(y);
    e = cached<Prim>(k, [&] {
      dnnl::softmax_v2_forward::desc d(prop_kind::forward_inference, softmax_alg(log), md_of(x), md_of(y),
                                       static_cast<int>(dim));
      return std::make_shared<Prim>(Prim{dnnl::softmax_v2_forward({d, engine()})});
    });
  }
  if (!e) return RefBackend::softmax_forward(x, y, dim, log);
  execute("softmax", e->prim, {{DNNL_ARG_SRC, wrap(md_of(x), x)}, {DNNL_ARG_DST, wrap(md_of(y), y)}});
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim,
                                  bool log) {
  std::shared_ptr<Prim> e;
  if (all_f32({&y, &gy, &gx}) && y.dim() > 0 && y.numel() > 0 && !has_broadcast(gx)) {
    Key k("softmax_bwd");
    k.add(log).add(dim).add(y).add(gy).add(gx);
    e = cached<Prim>(k, [&] {
      const memory::desc yd = md_of(y);
      const int axis = static_cast<int>(dim);
      dnnl::softmax_v2_forward::desc fd(prop_kind::forward_training, softmax_alg(log), yd, yd, axis);
      dnnl::softmax_v2_forward::primitive_desc hint(fd, engine());
      dnnl::softmax_v2_backward::desc d(softmax_alg(log), md_of(gx), md_of(gy), yd, axis);
      return std::make_shared<Prim>(Prim{dnnl::softmax_v2_backward({d, engine(), hint})});
    });
  }
  if (!e) return RefBackend::softmax_backward(y, gy, gx, dim, log);
  execute("softmax_backward", e->prim,
          {{DNNL_ARG_DST, wrap(md_of(y), y)},
           {DNNL_ARG_DIFF_DST, wrap(md_of(gy), gy)},
           {DNNL_ARG_DIFF_SRC, wrap(md_of(gx), gx)}});
}

void CpuBackend::concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) {
  std::shared_ptr<ConcatEntry> e;
  bool ok = out.dtype() == DType::f32 && out.dim() > 0 && out.numel() > 0 && !has_broadcast(out);
  for (const Tensor& x : xs) ok = ok && x.dtype() == DType::f32 && x.dim() == out.dim();
  if (ok) {
    Key k("concat");
    k.add(dim).add(out);
    for (const Tensor& x : xs) k.add(x);
    e = cached<ConcatEntry>(k, [&]() -> std::shared_ptr<ConcatEntry> {
      auto c = std::make_shared<ConcatEntry>();
      std::vector<memory::desc> mds;
      for (size_t i = 0; i < xs.size(); ++i)
        if (xs[i].numel() > 0) {  // oneDNN takes no empty inputs; they add nothing anyway
          c->inputs.push_back(i);
          mds.push_back(md_of(xs[i]));
        }
      if (mds.empty()) return nullptr;
      c->prim = dnnl::concat({md_of(out), static_cast<int>(dim), mds, engine()});
      return c;
    });
  }
  if (!e) return RefBackend::concat(xs, out, dim);
  std::unordered_map<int, memory> args{{DNNL_ARG_DST, wrap(md_of(out), out)}};
  for (size_t j = 0; j < e->inputs.size(); ++j) {
    const Tensor& x = xs[e->inputs[j]];
    args.emplace(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(j), wrap(md_of(x), x));
  }
  execute("concat", e->prim, args);
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  // f32 <-> bf16 and f32 -> f32 layout changes; oneDNN's other conversions (to u8/s32) round and
  // saturate where the reference truncates, so those stay on the loops.
  std::shared_ptr<Prim> e;
  if (dnnl_type(src.dtype()) && dnnl_type(dst.dtype()) && src.shape() == dst.shape() && src.numel() > 0 &&
      !has_broadcast(dst)) {
    Key k("copy");
    k.add(src).add(dst);
    e = cached<Prim>(k, [&] {
      return std::make_shared<Prim>(Prim{dnnl::reorder({engine(), md_of(src), engine(), md_of(dst)})});
    });
  }
  if (!e) return RefBackend::copy(src, dst);
  execute("copy", e->prim, {{DNNL_ARG_FROM, wrap(md_of(src), src)}, {DNNL_ARG_TO, wrap(md_of(dst), dst)}});
}

void CpuBackend::fill(const Tensor& dst, double value) {
  if (dst.dtype() != DType::f32 || !dst.is_non_overlapping_dense()) return RefBackend::fill(dst, value);
  // oneDNN has no fill primitive. A dense tensor occupies numel consecutive floats from its first
  // element (all strides positive), whatever its dim order.
  float* p = dst.data<float>();
  const float v = static_cast<float>(value);
  const int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = v;
}

}  // namespace resin::backend
