// Max and average pooling on oneDNN.
//
// Max pooling keeps oneDNN's workspace as the tensor handed to backward: u8 [N, C, OH, OW, E]
// (E = bytes per workspace element, 1 or 4) whose strides are the pooled output's dense layout
// times E. Backward reads that layout back from the strides, so it rebuilds the forward hint with
// the very layout forward used even when the incoming gradient is laid out differently.
#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {
namespace {

using namespace onednn;
using dnnl::algorithm;
using dnnl::prop_kind;

algorithm alg_of(Pool kind, const Pool2dParams& p) {
  if (kind == Pool::max) return algorithm::pooling_max;
  return p.count_include_pad ? algorithm::pooling_avg_include_padding
                             : algorithm::pooling_avg_exclude_padding;
}

// Right padding = left padding: oneDNN's output-size check floors exactly like resin's formula.
dnnl::pooling_forward::desc fwd_desc(Pool kind, const memory::desc& src, const memory::desc& dst,
                                     const Pool2dParams& p) {
  return dnnl::pooling_forward::desc(
      kind == Pool::max ? prop_kind::forward_training : prop_kind::forward_inference, alg_of(kind, p), src,
      dst, {p.stride_h, p.stride_w}, {p.kernel_h, p.kernel_w}, {p.pad_h, p.pad_w}, {p.pad_h, p.pad_w});
}

Key pool_key(const char* op, Pool kind, const Tensor& a, const Tensor& b, const Tensor& c,
             const Pool2dParams& p) {
  Key k(op);
  k.add(static_cast<int64_t>(kind)).add(a).add(b).add(c);
  for (int64_t v : {p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w}) k.add(v);
  return k.add(p.count_include_pad);
}

// y's shape in a dense layout: channels-last when y is (or when y's 1x1 output fits both layouts
// and x is), else contiguous — a format mismatch between src and dst sends oneDNN to its reference
// kernel.
Strides dense_layout(const Tensor& y, const Tensor& x) {
  const Strides cl = channels_last_strides(y.shape());
  if (y.suggest_memory_format() == MemoryFormat::channels_last) return cl;
  const bool fits_both = y.is_contiguous() && y.is_channels_last();
  if (fits_both && x.suggest_memory_format() == MemoryFormat::channels_last) return cl;
  return contiguous_strides(y.shape());
}

struct PoolFwd {
  dnnl::pooling_forward prim;
  Arg dst;
  memory::desc ws;      // max pooling only
  int64_t ws_elem = 0;  // bytes per workspace element
  Strides layout;       // dst's dense layout, the workspace's too
};

std::shared_ptr<PoolFwd> make_fwd(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  const Strides layout = dense_layout(y, x);
  const Dims dims(y.shape().begin(), y.shape().end());
  const memory::desc want = md_of(y, dims, Dims(layout.begin(), layout.end()));
  dnnl::pooling_forward::primitive_desc pd(fwd_desc(kind, md_of(x), want, p), engine());
  auto e = std::make_shared<PoolFwd>();
  e->prim = dnnl::pooling_forward(pd);
  e->dst = Arg(md_like(y, x), pd.dst_desc(), true);
  e->layout = layout;
  if (kind == Pool::max) {
    // Only a workspace laid out like dst can travel as the [N, C, OH, OW, E] tensor.
    const memory::desc ws = pd.workspace_desc();
    const auto wt = ws.data_type();
    if (wt != memory::data_type::u8 && wt != memory::data_type::s32) return nullptr;
    if (ws != memory::desc(dims, wt, Dims(layout.begin(), layout.end()))) return nullptr;
    e->ws = ws;
    e->ws_elem = wt == memory::data_type::u8 ? 1 : 4;
  }
  return e;
}

struct PoolBwd {
  dnnl::pooling_backward prim;
  Arg diff_dst;
  memory::desc ws;
};

std::shared_ptr<PoolBwd> make_bwd(Pool kind, const Tensor& gy, const Tensor& ws, const Tensor& gx,
                                  const Pool2dParams& p) {
  const memory::desc gxu = md_of(gx);
  memory::desc dst = md_like(gy, gx);
  if (kind == Pool::max) {
    const int64_t e = ws.size(4);
    dst = md_of(gy, Dims(gy.shape().begin(), gy.shape().end()),
                {ws.stride(0) / e, ws.stride(1) / e, ws.stride(2) / e, ws.stride(3) / e});
  }
  dnnl::pooling_forward::primitive_desc hint(fwd_desc(kind, gxu, dst, p), engine());
  if (kind == Pool::max) {
    const memory::desc w = hint.workspace_desc();
    RESIN_CHECK(w.data_type() == (ws.size(4) == 1 ? memory::data_type::u8 : memory::data_type::s32) &&
                    w.get_size() == static_cast<size_t>(ws.numel()),
                "max_pool2d backward: the workspace does not match the forward primitive");
  }
  dnnl::pooling_backward::desc d(alg_of(kind, p), gxu, dst, {p.stride_h, p.stride_w},
                                 {p.kernel_h, p.kernel_w}, {p.pad_h, p.pad_w}, {p.pad_h, p.pad_w});
  dnnl::pooling_backward::primitive_desc pd(d, engine(), hint);
  return std::make_shared<PoolBwd>(
      PoolBwd{dnnl::pooling_backward(pd), Arg(md_like(gy, gx), pd.diff_dst_desc(), false), hint.workspace_desc()});
}

bool usable(const Tensor& in, const Tensor& out) {
  return in.dtype() == DType::f32 && out.dtype() == DType::f32 && in.dim() == 4 && out.dim() == 4 &&
         in.numel() > 0 && out.numel() > 0 && !has_broadcast(out);
}

}  // namespace

Tensor CpuBackend::pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  std::shared_ptr<PoolFwd> e;
  if (usable(x, y))
    e = cached<PoolFwd>(pool_key("pool_fwd", kind, x, y, Tensor(), p),
                        [&] { return make_fwd(kind, x, y, p); });
  if (!e) return RefBackend::pool2d_forward(kind, x, y, p);
  Tensor ws;
  Scratch s;
  memory dst = e->dst.out(y, s);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(md_of(x), x)}, {DNNL_ARG_DST, dst}};
  if (kind == Pool::max) {
    const int64_t el = e->ws_elem;
    const Strides& l = e->layout;
    ws = empty_strided(Shape{y.size(0), y.size(1), y.size(2), y.size(3), el},
                       Strides{l[0] * el, l[1] * el, l[2] * el, l[3] * el, 1}, {.dtype = DType::u8});
    args.emplace(DNNL_ARG_WORKSPACE, wrap(e->ws, ws));
  }
  execute("pool2d", e->prim, args);
  e->dst.out_done(dst, y);
  return ws;
}

void CpuBackend::pool2d_backward(Pool kind, const Tensor& gy, const Tensor& ws, const Tensor& gx,
                                 const Pool2dParams& p) {
  std::shared_ptr<PoolBwd> e;
  const bool dnnl_ws = kind == Pool::avg || (ws.defined() && ws.dtype() == DType::u8 && ws.dim() == 5);
  if (usable(gy, gx) && dnnl_ws)
    e = cached<PoolBwd>(pool_key("pool_bwd", kind, gy, gx, ws, p),
                        [&] { return make_bwd(kind, gy, ws, gx, p); });
  if (!e) {
    RESIN_CHECK(kind == Pool::avg || ws.dtype() != DType::u8,
                "max_pool2d backward: oneDNN rejected the backward of its own forward (gradient ", gy.shape(),
                ")");
    return RefBackend::pool2d_backward(kind, gy, ws, gx, p);
  }
  Scratch s;
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, e->diff_dst.in(gy, s)},
                                       {DNNL_ARG_DIFF_SRC, wrap(md_of(gx), gx)}};
  if (kind == Pool::max) args.emplace(DNNL_ARG_WORKSPACE, wrap(e->ws, ws));
  execute("pool2d_backward", e->prim, args);
}

}  // namespace resin::backend
