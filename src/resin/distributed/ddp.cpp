#include "resin/distributed/ddp.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_set>

#include "resin/backend/backend.h"
#include "resin/core/cuda.h"
#include "resin/ops/detail.h"

namespace resin::distributed {

namespace {

using Clock = std::chrono::steady_clock;

// Parameters, buffers and gradients here are dense (some permutation of their dims is contiguous,
// all strides positive), so their elements form one block of memory starting at raw_data(); every
// rank has the same layouts, so copying blocks keeps elements matched across ranks.
size_t block_bytes(const Tensor& t, const std::string& name) {
  RESIN_CHECK(t.is_non_overlapping_dense(), "DistributedDataParallel: ", name, " of shape ", t.shape(),
              " is not dense (strides ", t.strides(), ")");
  return static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
}

template <class T>
void scaled_copy(T* dst, const T* src, int64_t n, T scale) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * scale;
}

}  // namespace

double DdpStats::hidden_fraction() const {
  if (all_reduce_seconds <= 0) return 0;
  return std::clamp(1.0 - wait_seconds / all_reduce_seconds, 0.0, 1.0);
}

struct DistributedDataParallel::Impl {
  struct Slot {
    std::string name;
    Tensor param;
    size_t bucket = 0;
    int64_t offset = 0;  // elements into the bucket
    bool ready = false;
  };
  struct Bucket {
    DType dtype = DType::f32;
    std::vector<size_t> slots;
    int64_t numel = 0;
    Tensor flat;
    int64_t pending = 0;
    WorkPtr work;
  };

  nn::Module* model = nullptr;
  CommunicatorPtr comm;
  DdpOptions opt;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  DdpStats stats;

  // The gradient's bytes into its bucket slot; the bucket lives on the communicator's device, the
  // gradient on the parameter's (cuda::raw::copy moves between any two).
  void copy_in(Slot& s) {
    Bucket& b = buckets[s.bucket];
    const size_t esize = dtype_size(b.dtype);
    const Device where = b.flat.device();
    char* dst = static_cast<char*>(b.flat.raw_data()) + static_cast<size_t>(s.offset) * esize;
    const Tensor g = s.param.grad();
    if (g.defined()) {
      RESIN_CHECK(g.dtype() == b.dtype && g.numel() == s.param.numel(), "DistributedDataParallel: gradient of ",
                  s.name, " has dtype ", g.dtype(), " and ", g.numel(), " elements; expected ", b.dtype, " and ",
                  s.param.numel());
      cuda::raw::copy(dst, where, g.raw_data(), g.device(), block_bytes(g, s.name + "'s gradient"));
    } else if (where.type == DeviceType::cpu) {
      std::memset(dst, 0, static_cast<size_t>(s.param.numel()) * esize);
    } else {
      const double zero = 0;  // all-zero bytes in f32 and f64 alike
      cuda::raw::fill(dst, where.index, static_cast<size_t>(s.param.numel()), &zero, esize);
    }
  }

  void on_gradient(size_t i) {
    Slot& s = slots[i];
    RESIN_CHECK(!s.ready, "DistributedDataParallel: ", s.name,
                " received a second gradient before synchronize_gradients(); call it after every backward");
    copy_in(s);
    s.ready = true;
    if (--buckets[s.bucket].pending == 0) launch_ready();
  }

  // Launches complete buckets strictly in bucket order, so every rank issues the same sequence.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      Bucket& b = buckets[next_launch++];
      b.work = comm->all_reduce_async(b.flat);
    }
  }

  void reset() {
    for (Slot& s : slots) s.ready = false;
    for (Bucket& b : buckets) {
      b.pending = static_cast<int64_t>(b.slots.size());
      b.work.reset();
    }
    next_launch = 0;
  }

  void synchronize() {
    struct ResetOnExit {
      Impl* self;
      ~ResetOnExit() { self->reset(); }
    } guard{this};
    for (size_t k = next_launch; k < buckets.size(); ++k)
      for (size_t i : buckets[k].slots)
        if (!slots[i].ready) {
          copy_in(slots[i]);
          slots[i].ready = true;
          --buckets[k].pending;
        }
    launch_ready();
    const auto t0 = Clock::now();
    for (Bucket& b : buckets) b.work->wait();
    stats.wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    for (Bucket& b : buckets) stats.all_reduce_seconds += b.work->run_seconds();
    ++stats.iterations;

    const double inv = 1.0 / static_cast<double>(comm->size());
    NoGradGuard ng;
    for (Slot& s : slots) {
      const Bucket& b = buckets[s.bucket];
      Tensor g = s.param.grad();
      if (!g.defined()) {
        g = empty_like(s.param);
        s.param.set_grad(g);
      }
      block_bytes(g, s.name + "'s gradient");
      const int64_t n = s.param.numel();
      if (b.flat.device() != Device::cpu() || g.device() != Device::cpu()) {
        // The slot seen with the gradient's geometry (it holds the gradient's bytes in memory order),
        // averaged where the bucket is and copied into the gradient (an upload when they differ).
        const Tensor slot = detail::make_view(b.flat, g.shape(), g.strides(), b.flat.offset() + s.offset);
        backend::backend_for(g).copy(mul(slot, inv), g);
      } else if (b.dtype == DType::f64) {
        scaled_copy(g.data<double>(), b.flat.data<double>() + s.offset, n, inv);
      } else {
        scaled_copy(g.data<float>(), b.flat.data<float>() + s.offset, n, static_cast<float>(inv));
      }
    }
  }

  // One broadcast of every listed tensor from rank 0, packed into a host byte buffer (the tensors
  // may live on any device: cuda::raw::copy moves their bytes).
  void broadcast(const std::vector<std::pair<std::string, Tensor>>& ts) {
    size_t total = 0;
    for (const auto& [name, t] : ts) total += block_bytes(t, name);
    if (total == 0) return;
    Tensor buf = empty({static_cast<int64_t>(total)}, {.dtype = DType::u8});
    auto* p = static_cast<char*>(buf.raw_data());
    size_t off = 0;
    for (const auto& [name, t] : ts) {
      const size_t n = block_bytes(t, name);
      cuda::raw::copy(p + off, Device::cpu(), t.raw_data(), t.device(), n);
      off += n;
    }
    comm->broadcast(buf, 0);
    if (comm->rank() == 0) return;
    off = 0;
    for (const auto& [name, t] : ts) {
      const size_t n = block_bytes(t, name);
      cuda::raw::copy(t.raw_data(), t.device(), p + off, Device::cpu(), n);
      off += n;
    }
  }
};

DistributedDataParallel::DistributedDataParallel(nn::Module& model, CommunicatorPtr comm, DdpOptions o)
    : impl_(std::make_shared<Impl>()) {
  RESIN_CHECK(comm != nullptr, "DistributedDataParallel: no communicator");
  RESIN_CHECK(o.bucket_bytes > 0 && o.first_bucket_bytes > 0, "DistributedDataParallel: bucket sizes must be positive");
  Impl& m = *impl_;
  m.model = &model;
  m.comm = std::move(comm);
  m.opt = o;
  std::unordered_set<const TensorImpl*> seen;  // a shared parameter is reduced once
  for (auto& [name, p] : model.named_parameters()) {
    if (!p.requires_grad() || !seen.insert(p.impl()).second) continue;
    RESIN_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, "DistributedDataParallel: parameter ", name,
                " has dtype ", p.dtype(), "; only f32 and f64 gradients are reduced");
    block_bytes(p, name);
    m.slots.push_back({name, p});
  }
  // Buckets over the reversed parameter list; the first one small, so communication starts early.
  int64_t cap = std::min(o.first_bucket_bytes, o.bucket_bytes), bytes = 0;
  for (size_t r = m.slots.size(); r-- > 0;) {
    auto& s = m.slots[r];
    const auto esize = static_cast<int64_t>(dtype_size(s.param.dtype()));
    const int64_t nb = s.param.numel() * esize;
    if (m.buckets.empty() || m.buckets.back().dtype != s.param.dtype() ||
        (bytes > 0 && bytes + nb > cap)) {
      if (!m.buckets.empty()) cap = o.bucket_bytes;
      m.buckets.emplace_back();
      m.buckets.back().dtype = s.param.dtype();
      bytes = 0;
    }
    Impl::Bucket& b = m.buckets.back();
    s.bucket = m.buckets.size() - 1;
    s.offset = b.numel;
    b.slots.push_back(r);
    b.numel += s.param.numel();
    bytes += nb;
  }
  for (auto& b : m.buckets) {
    b.flat = zeros({b.numel}, {.dtype = b.dtype, .device = m.comm->device()});
    m.stats.bytes_per_iteration += b.numel * static_cast<int64_t>(dtype_size(b.dtype));
  }
  m.stats.buckets = static_cast<int64_t>(m.buckets.size());
  m.reset();
  if (o.broadcast_state) broadcast_state();

  std::weak_ptr<Impl> weak = impl_;
  for (size_t i = 0; i < m.slots.size(); ++i)
    m.slots[i].param.register_post_accumulate_grad_hook([weak, i](const Tensor&) {
      if (auto self = weak.lock()) self->on_gradient(i);
    });
}

DistributedDataParallel::~DistributedDataParallel() = default;

void DistributedDataParallel::synchronize_gradients() { impl_->synchronize(); }

void DistributedDataParallel::broadcast_state() {
  auto ts = impl_->model->named_parameters();
  for (auto& b : impl_->model->named_buffers()) ts.push_back(b);
  impl_->broadcast(ts);
}

void DistributedDataParallel::broadcast_buffers() { impl_->broadcast(impl_->model->named_buffers()); }

const Communicator& DistributedDataParallel::communicator() const { return *impl_->comm; }
int64_t DistributedDataParallel::num_buckets() const { return static_cast<int64_t>(impl_->buckets.size()); }
DdpStats DistributedDataParallel::stats() const { return impl_->stats; }

}  // namespace resin::distributed
