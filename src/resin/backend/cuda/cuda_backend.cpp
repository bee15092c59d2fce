// CudaBackend: the kernels that run resin's own CUDA code (elementwise, copy, fill, reductions,
// softmax, layer norm, pooling, concat and the index kernels). cuDNN/cuBLAS calls are in dnn.cpp.
#include "resin/backend/cuda/cuda_backend.h"

#include "resin/backend/cuda/common.h"
#include "resin/backend/ref/ref_backend.h"
#include "resin/core/autocast.h"

namespace resin::backend {

using namespace cuda;

static_assert(static_cast<int>(Unary::clamp) == static_cast<int>(UnaryOp::clamp) &&
                  static_cast<int>(Unary::softplus) == static_cast<int>(UnaryOp::softplus),
              "UnaryOp mirrors backend::Unary");
static_assert(static_cast<int>(Binary::lt) == static_cast<int>(BinaryOp::lt), "BinaryOp mirrors backend::Binary");
static_assert(static_cast<int>(Reduce::min) == static_cast<int>(ReduceOp::min), "ReduceOp mirrors backend::Reduce");
static_assert(static_cast<int>(DType::u8) == static_cast<int>(ScalarType::u8), "ScalarType mirrors DType");

CudaBackend& cuda_backend() {
  static CudaBackend b;
  return b;
}

namespace cuda {

Tensor dense_on_device(const Tensor& t) {
  if (!t.defined() || t.is_non_overlapping_dense()) return t;
  Tensor out = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  cuda_backend().copy(t, out);
  return out;
}

OutProxy::OutProxy(const Tensor& t, bool usable, const Strides& want)
    : target(t),
      work(!t.defined() || usable ? t : empty_strided(t.shape(), want, {.dtype = t.dtype(), .device = t.device()})) {}

void OutProxy::finish() const {
  if (work.defined() && !work.is_same(target)) cuda_backend().copy(work, target);
}

OutProxy contiguous_out(const Tensor& t) {
  return OutProxy(t, !t.defined() || t.is_contiguous(), t.defined() ? contiguous_strides(t.shape()) : Strides{});
}

Tensor with_strides(const Tensor& t, const Strides& st) { return converted(t, t.dtype(), st); }

Tensor converted(const Tensor& t, DType ct, const Strides& st) {
  if (!t.defined() || (t.strides() == st && t.dtype() == ct)) return t;
  Tensor out = empty_strided(t.shape(), st, {.dtype = ct, .device = t.device()});
  cuda_backend().copy(t, out);
  return out;
}

DType autocast_compute(DType t) {
  const DType a = autocast_dtype();
  return t == DType::f32 && (a == DType::bf16 || a == DType::f16) ? a : t;
}

}  // namespace cuda

namespace {

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  RESIN_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", a.dtype(), " vs ", b.dtype());
}

Tensor contiguous_on_device(const Tensor& t) { return t.defined() ? with_strides(t, contiguous_strides(t.shape())) : t; }

// Sizes and strides of dims [from, to) of t as one dim, when they collapse into one.
bool collapse(const Tensor& t, int64_t from, int64_t to, int64_t& size, int64_t& stride) {
  size = 1;
  stride = 1;
  bool any = false;
  for (int64_t d = to - 1; d >= from; --d) {
    if (t.size(d) == 1) continue;
    if (!any) {
      stride = t.stride(d);
      any = true;
    } else if (t.stride(d) != stride * size) {
      return false;
    }
    size *= t.size(d);
  }
  return true;
}

Lanes lanes_of(const Tensor& t, int64_t dim) {
  Lanes l{};
  int64_t outer = 1, inner = 1;
  RESIN_CHECK(collapse(t, 0, dim, outer, l.outer_stride) && collapse(t, dim + 1, t.dim(), inner, l.inner_stride),
              "softmax: layout does not collapse");
  l.inner = inner;
  l.lanes = outer * inner;
  l.len = t.size(dim);
  l.stride = t.stride(dim);
  return l;
}

bool lanes_ok(const Tensor& t, int64_t dim) {
  int64_t s, st;
  return collapse(t, 0, dim, s, st) && collapse(t, dim + 1, t.dim(), s, st);
}

PoolGeometry pool_geometry(const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  PoolGeometry g{};
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.OH = y.size(2);
  g.OW = y.size(3);
  g.kh = p.kernel_h;
  g.kw = p.kernel_w;
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  g.ph = p.pad_h;
  g.pw = p.pad_w;
  g.count_include_pad = p.count_include_pad;
  for (int d = 0; d < 4; ++d) {
    g.x_strides[d] = x.stride(d);
    g.y_strides[d] = y.stride(d);
  }
  return g;
}

}  // namespace

void CudaBackend::unary(Unary op, const Tensor& x, const Tensor& out, UnaryParams p) {
  check_operands("unary", out.device(), {&x, &out});
  check_same_dtype("unary", x, out);
  if (out.numel() == 0) return;
  auto& c = enter(out);
  launch_unary(c.stream, static_cast<UnaryOp>(op), scalar_type(x.dtype()),
               make_indexer<2>(x.shape(), {&x.strides(), &out.strides()}), ptr(x), ptr(out), p.alpha, p.beta);
}

void CudaBackend::unary_backward(Unary op, const Tensor& x, const Tensor& y, const Tensor& gy, const Tensor& gx,
                                 UnaryParams p) {
  check_operands("unary_backward", gx.device(), {&x, &y, &gy, &gx});
  check_same_dtype("unary_backward", x, gx);
  if (gx.numel() == 0) return;
  auto& c = enter(gx);
  launch_unary_backward(c.stream, static_cast<UnaryOp>(op), scalar_type(x.dtype()),
                        make_indexer<4>(x.shape(), {&x.strides(), &y.strides(), &gy.strides(), &gx.strides()}),
                        ptr(x), ptr(y), ptr(gy), ptr(gx), p.alpha, p.beta);
}

void CudaBackend::binary(Binary op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_operands("binary", out.device(), {&a, &b, &out});
  check_same_dtype("binary", a, out);
  check_same_dtype("binary", b, out);
  if (out.numel() == 0) return;
  auto& c = enter(out);
  launch_binary(c.stream, static_cast<BinaryOp>(op), scalar_type(out.dtype()),
                make_indexer<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()}), ptr(a), ptr(b), ptr(out));
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_operands("where", out.device(), {&cond, &a, &b, &out});
  if (out.numel() == 0) return;
  Tensor c = cond;
  if (c.dtype() != out.dtype()) {  // 0/1 in out's dtype (a contiguous copy; cond itself may be expanded)
    c = empty(cond.shape(), {.dtype = out.dtype(), .device = out.device()});
    copy(cond, c);
  }
  auto& ctx = enter(out);
  launch_where(ctx.stream, scalar_type(out.dtype()),
               make_indexer<4>(out.shape(), {&c.strides(), &a.strides(), &b.strides(), &out.strides()}), ptr(c),
               ptr(a), ptr(b), ptr(out));
}

void CudaBackend::reduce(Reduce op, const Tensor& x, const Tensor& out) {
  check_operands("reduce", out.device(), {&x, &out});
  check_same_dtype("reduce", x, out);
  RESIN_CHECK(x.dim() == out.dim(), "reduce: out must keep x's rank, got ", x.shape(), " -> ", out.shape());
  if (out.numel() == 0) return;
  Shape kept = x.shape(), reduced = x.shape();
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool is_reduced = out.size(d) == 1 && x.size(d) != 1;
    (is_reduced ? kept : reduced)[static_cast<size_t>(d)] = 1;
  }
  const Indexer<2> keep = make_indexer<2>(kept, {&x.strides(), &out.strides()});
  const Indexer<1> red = make_indexer<1>(reduced, {&x.strides()});
  const int64_t scratch_bytes = reduce_scratch_bytes(scalar_type(x.dtype()), keep.numel, red.numel);
  Tensor scratch = scratch_bytes ? empty(Shape{scratch_bytes}, {.dtype = DType::u8, .device = out.device()}) : Tensor();
  auto& c = enter(out);
  launch_reduce(c.stream, static_cast<ReduceOp>(op), scalar_type(x.dtype()), keep, red, ptr(x), ptr(out), ptr(scratch));
}

void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  RESIN_CHECK(src.shape() == dst.shape(), "copy: source shape ", src.shape(), " vs destination ", dst.shape());
  if (dst.numel() == 0) return;
  if (src.device() != dst.device()) {
    if (dst.device().type == DeviceType::cpu) {  // a download: through a dense host copy
      ref_backend().copy(src.detach().to(Device::cpu()), dst);
      return;
    }
    copy(src.detach().to(dst.device()), dst);  // an upload (or another GPU): move, then convert here
    return;
  }
  auto& c = enter(dst);
  if (src.dtype() == dst.dtype() && src.strides() == dst.strides() && src.is_non_overlapping_dense()) {
    const size_t bytes = static_cast<size_t>(src.numel()) * dtype_size(src.dtype());
    check_cuda(cudaMemcpyAsync(ptr(dst), ptr(src), bytes, cudaMemcpyDeviceToDevice, c.stream), "copy");
    return;
  }
  launch_copy(c.stream, scalar_type(src.dtype()), scalar_type(dst.dtype()),
              make_indexer<2>(src.shape(), {&src.strides(), &dst.strides()}), ptr(src), ptr(dst));
}

void CudaBackend::fill(const Tensor& dst, double value) {
  check_operands("fill", dst.device(), {&dst});
  if (dst.numel() == 0) return;
  const Tensor one = full(Shape{}, value, {.dtype = dst.dtype()});  // the value in dst's dtype, on the host
  const int size = static_cast<int>(dtype_size(dst.dtype()));
  auto& c = enter(dst);
  if (dst.is_non_overlapping_dense()) launch_fill_dense(c.stream, ptr(dst), dst.numel(), one.raw_data(), size);
  else launch_fill(c.stream, make_indexer<1>(dst.shape(), {&dst.strides()}), ptr(dst), one.raw_data(), size);
}

void CudaBackend::layer_norm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& y,
                                     const Tensor& mean, const Tensor& rstd, double eps) {
  check_operands("layer_norm", x.device(), {&x, &gamma, &beta, &y, &mean, &rstd});
  const Tensor xc = contiguous_on_device(x), g = contiguous_on_device(gamma), b = contiguous_on_device(beta);
  const OutProxy yo = contiguous_out(y), mo = contiguous_out(mean), ro = contiguous_out(rstd);
  auto& c = enter(x);
  launch_layer_norm(c.stream, scalar_type(x.dtype()), x.size(0), x.size(1), ptr(xc), ptr(g), ptr(b), ptr(yo.work),
                    ptr(mo.work), ptr(ro.work), eps);
  yo.finish();
  mo.finish();
  ro.finish();
}

void CudaBackend::layer_norm_backward(const Tensor& x, const Tensor& gy, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& gamma, const Tensor& gx, const Tensor& ggamma,
                                      const Tensor& gbeta) {
  check_operands("layer_norm_backward", x.device(), {&x, &gy, &mean, &rstd, &gamma, &gx, &ggamma, &gbeta});
  const Tensor xc = contiguous_on_device(x), gyc = contiguous_on_device(gy), m = contiguous_on_device(mean),
               r = contiguous_on_device(rstd), g = contiguous_on_device(gamma);
  const OutProxy gxo = contiguous_out(gx), ggo = contiguous_out(ggamma), gbo = contiguous_out(gbeta);
  auto& c = enter(x);
  launch_layer_norm_backward(c.stream, scalar_type(x.dtype()), x.size(0), x.size(1), ptr(xc), ptr(gyc), ptr(m),
                             ptr(r), ptr(g), ptr(gxo.work), ptr(ggo.work), ptr(gbo.work));
  gxo.finish();
  ggo.finish();
  gbo.finish();
}

Tensor CudaBackend::pool2d_forward(Pool kind, const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  check_operands("pool2d", x.device(), {&x, &y});
  check_same_dtype("pool2d", x, y);
  auto& c = enter(x);
  const PoolGeometry g = pool_geometry(x, y, p);
  if (kind == Pool::avg) {
    if (y.numel() > 0) launch_avg_pool(c.stream, scalar_type(x.dtype()), g, ptr(x), ptr(y));
    return Tensor();
  }
  Tensor idx = empty(y.shape(), {.dtype = DType::i64, .device = x.device()});
  if (y.numel() > 0) launch_max_pool(c.stream, scalar_type(x.dtype()), g, ptr(x), ptr(y), static_cast<int64_t*>(ptr(idx)));
  return idx;
}

void CudaBackend::pool2d_backward(Pool kind, const Tensor& gy, const Tensor& workspace, const Tensor& gx,
                                  const Pool2dParams& p) {
  check_operands("pool2d_backward", gx.device(), {&gy, &workspace, &gx});
  check_same_dtype("pool2d_backward", gy, gx);
  if (gx.numel() == 0) return;
  auto& c = enter(gx);
  const PoolGeometry g = pool_geometry(gx, gy, p);
  if (kind == Pool::avg) {
    launch_avg_pool_backward(c.stream, scalar_type(gx.dtype()), g, ptr(gy), ptr(gx));
    return;
  }
  RESIN_CHECK(workspace.defined() && workspace.dtype() == DType::i64 && workspace.is_contiguous() &&
                  workspace.shape() == gy.shape(),
              "max_pool2d_backward: expected the i64 argmax workspace of the CUDA forward");
  launch_max_pool_backward(c.stream, scalar_type(gx.dtype()), g, ptr(gy), static_cast<const int64_t*>(ptr(workspace)),
                           ptr(gx));
}

void CudaBackend::softmax_forward(const Tensor& x, const Tensor& y, int64_t dim, bool log) {
  check_operands("softmax", x.device(), {&x, &y});
  RESIN_CHECK(x.strides() == y.strides(), "softmax: x and y must share a layout");
  if (x.numel() == 0) return;
  if (!lanes_ok(x, dim)) {  // a permuted layout whose outer or inner dims do not merge
    const Tensor xc = contiguous_on_device(x);
    Tensor yc = empty_like(xc);
    softmax_forward(xc, yc, dim, log);
    copy(yc, y);
    return;
  }
  auto& c = enter(x);
  launch_softmax(c.stream, scalar_type(x.dtype()), lanes_of(x, dim), ptr(x), ptr(y), log);
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, const Tensor& gx, int64_t dim, bool log) {
  check_operands("softmax_backward", y.device(), {&y, &gy, &gx});
  RESIN_CHECK(y.strides() == gy.strides() && y.strides() == gx.strides(), "softmax_backward: layouts differ");
  if (y.numel() == 0) return;
  if (!lanes_ok(y, dim)) {
    const Tensor yc = contiguous_on_device(y), gyc = contiguous_on_device(gy);
    Tensor gxc = empty_like(yc);
    softmax_backward(yc, gyc, gxc, dim, log);
    copy(gxc, gx);
    return;
  }
  auto& c = enter(y);
  launch_softmax_backward(c.stream, scalar_type(y.dtype()), lanes_of(y, dim), ptr(y), ptr(gy), ptr(gx), log);
}

void CudaBackend::concat(const std::vector<Tensor>& xs, const Tensor& out, int64_t dim) {
  int64_t start = 0;
  for (const Tensor& x : xs) {
    check_operands("concat", out.device(), {&x, &out});
    auto view = std::make_shared<TensorImpl>(out.impl()->storage(), x.shape(), out.strides(),
                                             out.offset() + start * out.stride(dim), out.dtype());
    copy(x, Tensor(view));
    start += x.size(dim);
  }
}

namespace {
const int64_t* index_ptr(const Tensor& index, const char* op) {
  RESIN_CHECK(index.dtype() == DType::i64, op, ": expected i64 indices, got ", index.dtype());
  return static_cast<const int64_t*>(ptr(index));
}
}  // namespace

void CudaBackend::gather_rows(const Tensor& x, const Tensor& index, const Tensor& out) {
  check_operands("gather_rows", x.device(), {&x, &index, &out});
  auto& c = enter(x);
  launch_gather_rows(c.stream, scalar_type(x.dtype()), out.numel(), ptr(x), x.stride(0), x.stride(1),
                     index_ptr(index, "gather_rows"), index.stride(0), ptr(out), out.stride(0));
}

void CudaBackend::scatter_rows_add(const Tensor& g, const Tensor& index, const Tensor& gx) {
  check_operands("scatter_rows_add", gx.device(), {&g, &index, &gx});
  auto& c = enter(gx);
  launch_scatter_rows_add(c.stream, scalar_type(g.dtype()), g.numel(), ptr(g), g.stride(0),
                          index_ptr(index, "scatter_rows_add"), index.stride(0), ptr(gx), gx.stride(0), gx.stride(1));
}

void CudaBackend::index_select(const Tensor& table, const Tensor& index, const Tensor& out) {
  check_operands("index_select", table.device(), {&table, &index, &out});
  const Tensor idx = contiguous_on_device(index);
  auto& c = enter(table);
  launch_index_select(c.stream, scalar_type(table.dtype()), idx.numel(), table.size(1), ptr(table), table.stride(0),
                      table.stride(1), index_ptr(idx, "index_select"), ptr(out), out.stride(0), out.stride(1));
}

void CudaBackend::index_add(const Tensor& g, const Tensor& index, const Tensor& gtable) {
  check_operands("index_add", gtable.device(), {&g, &index, &gtable});
  const Tensor idx = contiguous_on_device(index);
  auto& c = enter(gtable);
  launch_index_add(c.stream, scalar_type(g.dtype()), idx.numel(), gtable.size(1), ptr(g), g.stride(0), g.stride(1),
                   index_ptr(idx, "index_add"), ptr(gtable), gtable.stride(0), gtable.stride(1));
}

}  // namespace resin::backend
