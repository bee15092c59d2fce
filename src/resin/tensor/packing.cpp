#include "resin/tensor/packing.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace resin {
namespace {

std::atomic<int64_t> g_packs{0}, g_unpacks{0};

bool packing_from_env() {
  const char* v = std::getenv("RESIN_PACKED_ACTIVATIONS");
  return !(v && std::string(v) == "0");
}
std::atomic<bool> g_enabled{packing_from_env()};
constexpr int64_t kBlock = 16;

bool covers_storage(const Tensor& t) {
  const Storage& s = *t.impl()->storage();
  return t.offset() == 0 && s.nbytes == static_cast<size_t>(t.numel()) * sizeof(float);
}

// Calls f(packed index, strided index) for the 16 channels of each (n, channel block, position),
// parallel over samples and blocks; the strided index follows `plain`.
template <class F>
void for_each_line(const Shape& shape, const Strides& plain, F&& f) {
  const int64_t N = shape[0], CB = shape[1] / kBlock, H = shape[2], W = shape[3];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < CB; ++cb) {
      const int64_t packed = (n * CB + cb) * H * W * kBlock;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          f(packed + (h * W + w) * kBlock,
            n * plain[0] + cb * kBlock * plain[1] + h * plain[2] + w * plain[3]);
    }
}

// Copies between the two layouts; channels-last lines are 64 contiguous bytes on both sides.
void convert(const Shape& shape, const Strides& plain, const float* from, float* to, bool to_packed) {
  const int64_t cs = plain[1];
  for_each_line(shape, plain, [&](int64_t p, int64_t s) {
    if (cs == 1) {
      std::memcpy(to_packed ? to + p : to + s, to_packed ? from + s : from + p, kBlock * sizeof(float));
    } else {
      for (int64_t i = 0; i < kBlock; ++i) {
        if (to_packed)
          to[p + i] = from[s + i * cs];
        else
          to[s + i * cs] = from[p + i];
      }
    }
  });
}

// Converts a storage's bytes into a fresh block from the storage allocator (activation-sized blocks
// come from its block cache: no fresh pages) and swaps the blocks: one read and one write, like a reorder.
// Addresses taken before are stale afterwards; kernels take theirs after packing or unpacking their operands.
void convert_storage(Storage& s, const Shape& shape, const Strides& plain, bool to_packed) {
  const std::shared_ptr<Storage> fresh = Storage::allocate(s.nbytes, s.device);
  convert(shape, plain, reinterpret_cast<const float*>(s.data.get()),
          reinterpret_cast<float*>(fresh->data.get()), to_packed);
  std::swap(s.data, fresh->data);  // the old block goes back to the allocator with `fresh`
}

}  // namespace

bool can_pack(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::f32 || t.device().type != DeviceType::cpu || t.dim() != 4)
    return false;
  if (t.size(1) % kBlock != 0 || t.numel() == 0 || !covers_storage(t)) return false;
  return t.strides() == contiguous_strides(t.shape()) || t.strides() == channels_last_strides(t.shape());
}

float* packed_data(const Tensor& t) {
  if (!t.defined()) return nullptr;
  Storage& s = *t.impl()->storage();
  if (!s.packed.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(s.mu);  // `packing` and `data` change together under it
  if (!s.packed.load(std::memory_order_relaxed) || s.packing->shape != t.shape() ||
      s.packing->plain != t.strides() || t.offset() != 0)
    return nullptr;
  return reinterpret_cast<float*>(s.data.get());
}

float* packing_target(const Tensor& t) {
  if (float* p = packed_data(t)) return p;
  return can_pack(t) ? reinterpret_cast<float*>(t.impl()->storage()->data.get()) : nullptr;
}

void mark_packed(const Tensor& t) {
  RESIN_CHECK(packing_target(t) != nullptr, "mark_packed: a tensor of shape ", t.shape(), " and strides ",
              t.strides(), " cannot be packed");
  Storage& s = *t.impl()->storage();
  std::lock_guard<std::mutex> lock(s.mu);
  s.packing = std::make_unique<Packing>(Packing{t.shape(), t.strides()});
  s.packed.store(true, std::memory_order_release);
  g_packs.fetch_add(1);
}

void pack(const Tensor& t) {
  RESIN_CHECK(can_pack(t), "pack: a tensor of shape ", t.shape(), " and strides ", t.strides(),
              " cannot be packed");
  if (packed_data(t)) return;
  t.raw_data();  // a storage packed for another view of it is unpacked first
  convert_storage(*t.impl()->storage(), t.shape(), t.strides(), true);
  mark_packed(t);
}

void unpack_storage(Storage& s) {
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.packed.load(std::memory_order_relaxed)) return;  // another thread unpacked it meanwhile
  convert_storage(s, s.packing->shape, s.packing->plain, false);
  s.packed.store(false, std::memory_order_release);
  s.packing.reset();
  g_unpacks.fetch_add(1);
}

int64_t pack_count() { return g_packs.load(); }
int64_t unpack_count() { return g_unpacks.load(); }
bool packing_enabled() { return g_enabled.load(); }
void set_packing_enabled(bool on) { g_enabled.store(on); }

}  // namespace resin
