// Engine, stream, primitive cache, descriptors, staging and scratch for the oneDNN kernels.
#include "resin/backend/cpu/dnnl_context.h"

#include <atomic>
#include <cstdlib>
#include <list>
#include <mutex>
#include <vector>

namespace resin::backend::onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

// ---- cache

namespace {

struct Cache {
  std::mutex mu;
  // Most recently used at the front.
  std::list<std::pair<std::string, std::shared_ptr<void>>> lru;
  std::unordered_map<std::string, decltype(lru)::iterator> index;
  int64_t hits = 0, misses = 0;
  std::atomic<int64_t> rejected{0}, executed{0};
};

Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

Key& Key::add(const Tensor& t) {
  if (!t.defined()) return add(int64_t{-1});
  add(static_cast<int64_t>(t.dtype())).add(t.dim());
  for (int64_t d : t.shape()) add(d);
  for (int64_t s : t.strides()) add(s);
  return *this;
}

namespace detail {

std::optional<std::shared_ptr<void>> cache_lookup(const std::string& key) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.index.find(key);
  if (it == c.index.end()) {
    ++c.misses;
    return std::nullopt;
  }
  ++c.hits;
  c.lru.splice(c.lru.begin(), c.lru, it->second);
  return it->second->second;
}

void cache_insert(const std::string& key, std::shared_ptr<void> entry) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto it = c.index.find(key); it != c.index.end()) {  // another thread built it meanwhile
    it->second->second = std::move(entry);
    return;
  }
  c.lru.emplace_front(key, std::move(entry));
  c.index.emplace(key, c.lru.begin());
  while (c.lru.size() > kCacheCapacity) {
    c.index.erase(c.lru.back().first);
    c.lru.pop_back();
  }
}

void count_rejected() { ++cache().rejected; }

}  // namespace detail

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

memory::desc any_md(const memory::desc& md) {
  return memory::desc(md.dims(), md.data_type(), memory::format_tag::any);
}

memory::desc dense_md(const Dims& dims, memory::data_type dt) {
  Dims st(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) st[i - 1] = st[i] * dims[i];
  return memory::desc(dims, dt, st);
}

bool is_fast_impl(const dnnl::primitive_desc_base& pd) {
  const std::string s = pd.impl_info_str();
  return s.find("gemm") == std::string::npos && s.find("ref") == std::string::npos;
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

Arg::Arg(const memory::desc& user_md, const memory::desc& want_md, bool is_output)
    : user(user_md), want(want_md) {
  if (user == want) return;
  if (is_output)
    to_user = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), want, engine(), user));
  else
    to_want = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), want));
}

memory wrap(const memory::desc& md, void* p) { return memory(md, engine(), p); }
memory wrap(const memory::desc& md, const Tensor& t) { return wrap(md, t.raw_data()); }

memory Arg::in(const Tensor& t, Scratch& s) const {
  if (!to_want) return wrap(want, t);
  memory m = wrap(want, s.get(want.get_size()));
  execute("reorder", *to_want, {{DNNL_ARG_FROM, wrap(user, t)}, {DNNL_ARG_TO, m}});
  return m;
}

memory Arg::out(const Tensor& t, Scratch& s) const {
  if (!to_user) return wrap(want, t);
  return wrap(want, s.get(want.get_size()));
}

void Arg::out_done(const memory& m, const Tensor& t) const {
  if (to_user) execute("reorder", *to_user, {{DNNL_ARG_FROM, m}, {DNNL_ARG_TO, wrap(user, t)}});
}

void execute(const char* op, const dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
  ++cache().executed;
  try {
    p.execute(stream(), args);
    stream().wait();
  } catch (const dnnl::error& e) {
    RESIN_FAIL(op, ": oneDNN failed: ", e.what());
  }
}

}  // namespace resin::backend::onednn

namespace resin::backend {

PrimitiveCacheStats CpuBackend::cache_stats() {
  auto& c = onednn::cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.hits, c.misses, static_cast<int64_t>(c.lru.size()), c.rejected.load(), c.executed.load()};
}

void CpuBackend::clear_cache() {
  auto& c = onednn::cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.lru.clear();
  c.index.clear();
}

}  // namespace resin::backend
