// Batched matmul on oneDNN: [B, M, K] x [B, K, N] -> [B, M, N] with arbitrary strides.
//
// oneDNN reads transposed operands through strides when one of the two inner strides is 1 (its
// gemm kernels); an operand with neither is reordered into a dense copy first. A batch dim of
// stride 0 (an operand broadcast over the batch) becomes a batch dim of 1, which oneDNN broadcasts.
#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {
namespace {

using namespace onednn;

// The operand as oneDNN sees it, and the layout the primitive reads it in.
Arg matmul_arg(const Tensor& t) {
  const bool bcast = t.stride(0) == 0 && t.size(0) > 1;
  const Dims dims{bcast ? 1 : t.size(0), t.size(1), t.size(2)};
  Strides st = normalized_strides(Shape{dims[0], dims[1], dims[2]}, t.strides());
  // A batch of one may carry any stride; a small one makes oneDNN see a "cba"-like layout and fall
  // back to its reference kernel (100x slower for the transposed weight of linear()).
  if (dims[0] == 1) st[0] = std::max(st[1] * dims[1], st[2] * dims[2]);
  const memory::desc user = md_of(t, dims, Dims(st.begin(), st.end()));
  const bool inner_unit = (st[2] == 1 || dims[2] == 1) || (st[1] == 1 || dims[1] == 1);
  return Arg(user, inner_unit ? user : dense_md(dims), false);
}

struct MatmulEntry {
  dnnl::matmul prim;
  Arg a, b;
  memory::desc out;
};

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  std::shared_ptr<MatmulEntry> e;
  if (all_f32({&a, &b, &out}) && a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && a.numel() > 0 &&
      b.numel() > 0 && out.numel() > 0 && !has_broadcast(out) && !(a.stride(1) == 0 && a.size(1) > 1) &&
      !(a.stride(2) == 0 && a.size(2) > 1) && !(b.stride(1) == 0 && b.size(1) > 1) &&
      !(b.stride(2) == 0 && b.size(2) > 1)) {
    Key k("matmul");
    k.add(a).add(b).add(out);
    e = cached<MatmulEntry>(k, [&] {
      auto m = std::make_shared<MatmulEntry>();
      m->a = matmul_arg(a);
      m->b = matmul_arg(b);
      m->out = md_of(out);
      m->prim = dnnl::matmul({{m->a.want, m->b.want, m->out}, engine()});
      return m;
    });
  }
  if (!e) return RefBackend::matmul(a, b, out);
  Scratch s;
  execute(
      "matmul", e->prim,
      {{DNNL_ARG_SRC, e->a.in(a, s)}, {DNNL_ARG_WEIGHTS, e->b.in(b, s)}, {DNNL_ARG_DST, wrap(e->out, out)}});
}

}  // namespace resin::backend
