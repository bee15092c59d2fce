// Descriptors, scratch arena and staging reorders for the oneDNN kernels.
#include "resin/backend/cpu/dnnl_util.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "resin/core/autocast.h"
#include "resin/tensor/packing.h"

namespace resin::backend::onednn {

// ---- descriptors

std::optional<memory::data_type> dnnl_type(DType t) {
  switch (t) {
    case DType::f32: return memory::data_type::f32;
    case DType::bf16: return memory::data_type::bf16;
    default: return std::nullopt;
  }
}

bool all_f32(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined() && t->dtype() != DType::f32) return false;
  return true;
}

bool has_broadcast(const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.stride(d) == 0 && t.size(d) > 1) return true;
  return false;
}

namespace {
// Strides agree with `want` on every dim of size > 1.
bool same_layout(const Shape& shape, const Strides& strides, const Strides& want) {
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && strides[d] != want[d]) return false;
  return true;
}
}  // namespace

Strides normalized_strides(const Shape& shape, const Strides& strides) {
  Strides c = contiguous_strides(shape);
  if (same_layout(shape, strides, c)) return c;
  if (shape.size() == 4) {
    Strides cl = channels_last_strides(shape);
    if (same_layout(shape, strides, cl)) return cl;
  }
  return strides;
}

memory::desc md_of(const Tensor& t, const Dims& dims, const Dims& strides) {
  auto dt = dnnl_type(t.dtype());
  if (!dt) throw dnnl::error(dnnl_unimplemented, "resin: dtype without a oneDNN type");
  return memory::desc(dims, *dt, strides);
}

memory::desc md_of(const Tensor& t) {
  if (t.dim() == 0) return md_of(t, Dims{1}, Dims{1});
  const Strides st = normalized_strides(t);
  return md_of(t, Dims(t.shape().begin(), t.shape().end()), Dims(st.begin(), st.end()));
}

memory::desc md_like(const Tensor& t, const Tensor& like) {
  if (t.dim() != 4 || like.dim() != 4 || like.suggest_memory_format() != MemoryFormat::channels_last) return md_of(t);
  const Strides cl = channels_last_strides(t.shape());
  if (!same_layout(t.shape(), t.strides(), cl)) return md_of(t);
  return md_of(t, Dims(t.shape().begin(), t.shape().end()), Dims(cl.begin(), cl.end()));
}

memory::desc any_md(const memory::desc& md) {
  return memory::desc(md.dims(), md.data_type(), memory::format_tag::any);
}

memory::desc retype(const memory::desc& md, memory::data_type dt) {
  dnnl_memory_desc_t d = md.data;
  d.data_type = static_cast<dnnl_data_type_t>(dt);
  return memory::desc(d);
}

memory::data_type compute_type() {
  return autocast_dtype() == DType::bf16 && bf16_compute_supported() ? memory::data_type::bf16
                                                                      : memory::data_type::f32;
}

namespace {
Bf16Policy policy_from_env() {
  Bf16Policy p;
  auto read = [](const char* env, bool& fwd, bool& bwd_data, bool& bwd_weights) {
    const char* e = std::getenv(env);
    if (!e) return;
    const std::string v = std::string(",") + e + ",";
    fwd = v.find(",fwd,") != std::string::npos;
    bwd_data = v.find(",bwd_data,") != std::string::npos;
    bwd_weights = v.find(",bwd_weights,") != std::string::npos;
  };
  read("RESIN_BF16_PASSES", p.fwd, p.bwd_data, p.bwd_weights);
  read("RESIN_BF16_BLOCKED", p.fwd_blocked, p.bwd_data_blocked, p.bwd_weights_blocked);
  return p;
}

std::mutex& policy_mutex() {
  static std::mutex m;
  return m;
}

Bf16Policy& policy() {
  static Bf16Policy p = policy_from_env();
  return p;
}
}  // namespace

memory::desc dense_md(const Dims& dims, memory::data_type dt) {
  Dims st(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) st[i - 1] = st[i] * dims[i];
  return memory::desc(dims, dt, st);
}

bool is_fast_impl(const dnnl::primitive_desc_base& pd) {
  const std::string s = pd.impl_info_str();
  return s.find("gemm") == std::string::npos && s.find("ref") == std::string::npos;
}

// ---- convolution geometry and algorithm

ConvGeometry conv_geometry(const Conv2dParams& p) {
  return {
      {p.stride_h, p.stride_w}, {p.dilation_h - 1, p.dilation_w - 1}, {p.pad_h, p.pad_w}, {p.pad_h, p.pad_w}};
}

memory::desc weights_md(const Tensor& w, int64_t groups) {
  if (groups == 1) return md_of(w);
  const Strides s = normalized_strides(w);
  return md_of(w, {groups, w.size(0) / groups, w.size(1), w.size(2), w.size(3)},
               {s[0] * (w.size(0) / groups), s[0], s[1], s[2], s[3]});
}

namespace {
enum class AlgoPolicy { heuristic, direct, winograd };
AlgoPolicy algo_policy() {
  static const AlgoPolicy p = [] {
    const char* e = std::getenv("RESIN_CONV_ALGO");
    const std::string s = e ? e : "";
    if (s == "direct") return AlgoPolicy::direct;
    if (s == "winograd") return AlgoPolicy::winograd;
    return AlgoPolicy::heuristic;
  }();
  return p;
}
}  // namespace

bool want_winograd(int64_t ic, int64_t oc, int64_t kh, int64_t kw, const Conv2dParams& p) {
  const AlgoPolicy policy = algo_policy();
  if (policy == AlgoPolicy::direct) return false;
  const bool eligible = kh == 3 && kw == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
                        p.dilation_w == 1 && p.groups == 1 && ic % 16 == 0 && oc % 16 == 0;
  if (!eligible) return false;
  if (policy == AlgoPolicy::winograd) return true;
  return ic >= 32 && oc >= 32;
}

// ---- scratch

namespace {

struct Arena {
  struct Buf {
    void* p = nullptr;
    size_t cap = 0;
  };
  std::vector<Buf> bufs;
  size_t top = 0;
  ~Arena() {
    for (Buf& b : bufs) std::free(b.p);
  }
};

Arena& arena() {
  thread_local Arena a;
  return a;
}

}  // namespace

Scratch::Scratch() : start_(arena().top) {}
Scratch::~Scratch() { arena().top = start_; }

void* Scratch::get(size_t bytes) {
  Arena& a = arena();
  if (a.top == a.bufs.size()) a.bufs.emplace_back();
  Arena::Buf& b = a.bufs[a.top++];
  if (b.cap < bytes) {
    std::free(b.p);
    const size_t cap = (bytes + 63) / 64 * 64;
    b.p = std::aligned_alloc(64, cap);
    RESIN_CHECK(b.p, "cpu backend: out of memory allocating ", cap, " bytes of scratch");
    b.cap = cap;
  }
  return b.p;
}

// ---- staging

std::optional<memory::desc> packed_md(const memory::desc& user) {
  const Dims d = user.dims();
  if (d.size() != 4 || user.data_type() != memory::data_type::f32 || d[1] % 16 != 0) return std::nullopt;
  return memory::desc(d, memory::data_type::f32, memory::format_tag::aBcd16b);
}

Arg::Arg(const memory::desc& user_md, const memory::desc& want_md, bool is_output, bool activation)
    : user(user_md), want(want_md) {
  if (activation) packed = packed_md(user);
  if (packed && !is_output && want != *packed)
    packed_to_want = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), *packed, engine(), want));
  if (user == want) return;
  if (is_output)
    to_user = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), want, engine(), user));
  else
    to_want = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), want));
}

memory wrap(const memory::desc& md, void* p) { return memory(md, engine(), p); }
memory wrap(const memory::desc& md, const Tensor& t) { return wrap(md, t.raw_data()); }

namespace {
// Reorders of at most this many bytes (weights of most layers) run on the calling thread: an
// OpenMP fork/join costs more than the copy, and on a loaded machine a parallel region can wait a
// whole scheduler time slice for a descheduled thread.
constexpr size_t kSerialReorderBytes = 128 << 10;

int reorder_threads(const memory::desc& md) { return md.get_size() <= kSerialReorderBytes ? 1 : 0; }
}  // namespace

bool Arg::writes_packed(const Tensor& t) const {
  return wants_packed(*this) && packing_enabled() && packing_target(t) != nullptr;
}

memory Arg::in(const Tensor& t, Scratch& s, bool pack_strided) const {
  // Packing in place costs one pass, like the reorder it replaces, and the tensor's other readers
  // (backward-weights, the residual add) then find it packed too.
  if (pack_strided && wants_packed(*this) && packing_enabled() && !packed_data(t) && can_pack(t)) pack(t);
  if (float* p = packed ? packed_data(t) : nullptr) {
    if (!packed_to_want) return wrap(want, p);
    memory m = wrap(want, s.get(want.get_size()));
    execute("reorder", *packed_to_want, {{DNNL_ARG_FROM, wrap(*packed, p)}, {DNNL_ARG_TO, m}},
            reorder_threads(want));
    return m;
  }
  if (!to_want) return wrap(want, t);
  memory m = wrap(want, s.get(want.get_size()));
  execute("reorder", *to_want, {{DNNL_ARG_FROM, wrap(user, t)}, {DNNL_ARG_TO, m}}, reorder_threads(want));
  return m;
}

memory Arg::out(const Tensor& t, Scratch& s) const {
  if (!to_user) return wrap(want, t);
  if (writes_packed(t)) return wrap(want, packing_target(t));
  return wrap(want, s.get(want.get_size()));
}

void Arg::out_done(const memory& m, const Tensor& t) const {
  if (!to_user) return;
  if (wants_packed(*this) && m.get_data_handle() == packing_target(t)) return mark_packed(t);
  execute("reorder", *to_user, {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, wrap(user, t)}}, reorder_threads(want));
}

}  // namespace resin::backend::onednn

namespace resin::backend {

Bf16Policy CpuBackend::bf16_policy() {
  std::lock_guard<std::mutex> lock(onednn::policy_mutex());
  return onednn::policy();
}

void CpuBackend::set_bf16_policy(const Bf16Policy& p) {
  std::lock_guard<std::mutex> lock(onednn::policy_mutex());
  onednn::policy() = p;
}

}  // namespace resin::backend
