// Batched matmul on oneDNN: [B, M, K] x [B, K, N] -> [B, M, N] with arbitrary strides.
//
// oneDNN reads transposed operands through strides when one of the two inner strides is 1 (its
// gemm kernels); an operand with neither is reordered into a dense copy first. A batch dim of
// stride 0 (an operand broadcast over the batch) becomes a batch dim of 1, which oneDNN broadcasts.
#include <string>

#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {
namespace {

using namespace onednn;

// The operand as oneDNN sees it, and the layout (and type ct) the primitive reads it in.
Arg matmul_arg(const Tensor& t, memory::data_type ct) {
  const bool bcast = t.stride(0) == 0 && t.size(0) > 1;
  const Dims dims{bcast ? 1 : t.size(0), t.size(1), t.size(2)};
  Strides st = normalized_strides(Shape{dims[0], dims[1], dims[2]}, t.strides());
  // A batch of one may carry any stride; a small one makes oneDNN see a "cba"-like layout and fall
  // back to its reference kernel (100x slower for the transposed weight of linear()).
  if (dims[0] == 1) st[0] = std::max(st[1] * dims[1], st[2] * dims[2]);
  const memory::desc user = md_of(t, dims, Dims(st.begin(), st.end()));
  const bool inner_unit = (st[2] == 1 || dims[2] == 1) || (st[1] == 1 || dims[1] == 1);
  return Arg(user, inner_unit ? retype(user, ct) : dense_md(dims, ct), false);
}

struct MatmulEntry {
  dnnl::matmul prim;
  Arg a, b;
  memory::desc out;
  bool bf16 = false;
};

std::shared_ptr<MatmulEntry> make_matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool bf16) {
  const memory::data_type ct = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto m = std::make_shared<MatmulEntry>();
  m->a = matmul_arg(a, ct);
  m->b = matmul_arg(b, ct);
  m->out = md_of(out);
  dnnl::matmul::primitive_desc pd({m->a.want, m->b.want, m->out}, engine());
  if (bf16 && std::string(pd.impl_info_str()).find("ref") != std::string::npos) return nullptr;
  m->prim = dnnl::matmul(pd);
  m->bf16 = bf16;
  return m;
}

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  std::shared_ptr<MatmulEntry> e;
  if (all_f32({&a, &b, &out}) && a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && a.numel() > 0 &&
      b.numel() > 0 && out.numel() > 0 && !has_broadcast(out) && !(a.stride(1) == 0 && a.size(1) > 1) &&
      !(a.stride(2) == 0 && a.size(2) > 1) && !(b.stride(1) == 0 && b.size(1) > 1) &&
      !(b.stride(2) == 0 && b.size(2) > 1)) {
    const bool bf16 = compute_type() == memory::data_type::bf16;
    Key k("matmul");
    k.add(a).add(b).add(out).add(bf16);
    e = cached<MatmulEntry>(k, [&] {
      return bf16_or_f32(bf16, [&](bool half) { return make_matmul(a, b, out, half); });
    });
  }
  if (!e) return RefBackend::matmul(a, b, out);
  if (e->bf16) detail::count_bf16();
  Scratch s;
  execute(
      "matmul", e->prim,
      {{DNNL_ARG_SRC, e->a.in(a, s)}, {DNNL_ARG_WEIGHTS, e->b.in(b, s)}, {DNNL_ARG_DST, wrap(e->out, out)}});
}

}  // namespace resin::backend
