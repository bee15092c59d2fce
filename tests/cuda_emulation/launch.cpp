// Kernel launches on the emulated GPU: each block runs on the calling host thread, one fiber
// (ucontext) per GPU thread. A fiber runs until it finishes or waits at a barrier or shuffle; when
// every live thread of the block (or lanes of the warp) waits, the scheduler releases them. Threads
// run in index order, blocks one after another, so a kernel's result is deterministic.
//
// Fibers cost a few system calls per thread, so a kernel whose first launch waited at no barrier or
// shuffle runs later launches as plain calls, thread after thread (the same order, so the same
// result); should such a kernel wait after all, the launch fails loudly instead of deadlocking.
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "cuda_emulation/kernel.h"
#include "cuda_emulation/memory.h"
#include "cuda_emulation/runtime_state.h"

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace resin::cuda_emulation {
namespace {

constexpr int kWarpSize = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = size_t{256} << 10;  // untouched pages cost nothing (mmap)

enum class State { runnable, at_barrier, at_shuffle, done };

struct Fiber {
  ucontext_t context;
  State state = State::done;
  unsigned char value[8];  // a shuffle's operand, then its result
  int bytes = 0, lane_mask = 0;
};

// The fibers of the block being run on this host thread, with their stacks (kept for the next block).
struct Scheduler {
  ucontext_t main;
  Fiber fibers[kMaxThreads];
  void* stacks = nullptr;
  int count = 0, current = 0;
  const std::function<void()>* body = nullptr;

  Scheduler() {
    stacks = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stacks == MAP_FAILED) throw std::runtime_error("emulated GPU: no memory for fiber stacks");
  }
  ~Scheduler() { munmap(stacks, kStackBytes * kMaxThreads); }
};

// RESIN_CUDA_EMULATION_ORDER=reverse runs blocks, and threads between barriers, in descending index
// order: a kernel whose result depends on the order (a race on a GPU) then gives another result.
bool reverse_order() {
  static const bool on = [] {
    const char* e = std::getenv("RESIN_CUDA_EMULATION_ORDER");
    return e && std::strcmp(e, "reverse") == 0;
  }();
  return on;
}

// The i-th of n in the configured order.
int64_t nth(int64_t i, int64_t n) { return reverse_order() ? n - 1 - i : i; }

thread_local std::unique_ptr<Scheduler> t_scheduler;
thread_local Scheduler* t_running = nullptr;  // set while a block runs on fibers
thread_local bool t_direct = false;           // set while a barrier-free kernel runs as plain calls
thread_local bool t_waited = false;           // a thread of this launch waited at a barrier or shuffle

// Per kernel: whether its first launch waited anywhere.
std::mutex g_kernels_mu;
std::unordered_map<const void*, bool> g_kernel_waits;

void refuse_direct_wait() {
  if (!t_direct) return;
  std::fprintf(stderr, "emulated GPU: a kernel that ran without barriers before waits at one now\n");
  std::abort();
}

void fiber_entry() {
  Scheduler& s = *t_running;
  (*s.body)();
  s.fibers[s.current].state = State::done;
  // returning resumes s.main (uc_link)
}

void suspend(State why) {
  t_waited = true;
  Scheduler& s = *t_running;
  Fiber& f = s.fibers[s.current];
  f.state = why;
  swapcontext(&f.context, &s.main);
}

void set_thread_index(int linear) {
  threadIdx.x = static_cast<unsigned>(linear) % blockDim.x;
  threadIdx.y = static_cast<unsigned>(linear) / blockDim.x % blockDim.y;
  threadIdx.z = static_cast<unsigned>(linear) / (blockDim.x * blockDim.y);
}

// Releases every warp whose live lanes all wait at a shuffle; a warp with an exited lane is a
// divergence error. Returns whether any warp was released.
bool release_warps(Scheduler& s, bool& divergent) {
  bool released = false;
  for (int w0 = 0; w0 < s.count; w0 += kWarpSize) {
    const int w1 = std::min(w0 + kWarpSize, s.count);
    int waiting = 0, live = 0;
    for (int t = w0; t < w1; ++t) {
      if (s.fibers[t].state != State::done) ++live;
      if (s.fibers[t].state == State::at_shuffle) ++waiting;
    }
    if (waiting == 0 || waiting != live) continue;
    if (live != w1 - w0 || w1 - w0 != kWarpSize) {
      divergent = true;
      return false;
    }
    unsigned char in[kWarpSize][8];
    for (int t = w0; t < w1; ++t) std::memcpy(in[t - w0], s.fibers[t].value, 8);
    for (int t = w0; t < w1; ++t) {
      Fiber& f = s.fibers[t];
      const int src = (t - w0) ^ f.lane_mask;  // outside the warp: the lane keeps its own value
      if (src >= 0 && src < kWarpSize) std::memcpy(f.value, in[src], 8);
      f.state = State::runnable;
    }
    released = true;
  }
  return released;
}

bool release_block(Scheduler& s) {
  int waiting = 0, live = 0;
  for (int t = 0; t < s.count; ++t) {
    if (s.fibers[t].state != State::done) ++live;
    if (s.fibers[t].state == State::at_barrier) ++waiting;
  }
  if (waiting == 0 || waiting != live) return false;
  for (int t = 0; t < s.count; ++t)
    if (s.fibers[t].state == State::at_barrier) s.fibers[t].state = State::runnable;
  return true;
}

// Runs one block; false (with a message on stderr) when its threads cannot all finish.
bool run_block(Scheduler& s) {
  for (int t = 0; t < s.count; ++t) {
    Fiber& f = s.fibers[t];
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = static_cast<char*>(s.stacks) + static_cast<size_t>(t) * kStackBytes;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &s.main;
    makecontext(&f.context, fiber_entry, 0);
    f.state = State::runnable;
  }
  for (;;) {
    for (int i = 0; i < s.count; ++i) {
      const int t = static_cast<int>(nth(i, s.count));
      if (s.fibers[t].state != State::runnable) continue;
      s.current = t;
      set_thread_index(t);
      swapcontext(&s.main, &s.fibers[t].context);
    }
    bool all_done = true;
    for (int t = 0; t < s.count; ++t) all_done = all_done && s.fibers[t].state == State::done;
    if (all_done) return true;
    bool divergent = false;
    if (release_warps(s, divergent) || (!divergent && release_block(s))) continue;
    std::fprintf(stderr, "emulated GPU: %s in block (%u, %u, %u)\n",
                 divergent ? "a full-warp shuffle with exited lanes (divergent warp)"
                           : "threads wait at different barriers (deadlock)",
                 blockIdx.x, blockIdx.y, blockIdx.z);
    return false;
  }
}

// Calls run() with blockIdx set to every block of the grid in the configured order, until it fails.
template <class Run>
bool for_each_block(dim3 grid, Run&& run) {
  const int64_t count = int64_t{grid.x} * grid.y * grid.z;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t b = nth(i, count);
    blockIdx = uint3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                     static_cast<unsigned>(b / (int64_t{grid.x} * grid.y))};
    if (!run()) return false;
  }
  return true;
}

// A kernel that wrote past the block one of its pointers points into: an illegal address on a GPU
// (or silent corruption of a neighbour), an error here.
void check_guards(const std::vector<const void*>& pointers) {
  for (const void* p : pointers) {
    std::string where;
    if (p && !guards_intact(p, &where)) {
      std::fprintf(stderr, "emulated GPU: a kernel wrote outside %s\n", where.c_str());
      record_launch_error(cudaErrorIllegalAddress);
      return;
    }
  }
}

}  // namespace

void block_barrier() {
  refuse_direct_wait();
  suspend(State::at_barrier);
}

void warp_exchange_xor(unsigned mask, void* value, int bytes, int lane_mask) {
  refuse_direct_wait();
  Scheduler& s = *t_running;
  Fiber& f = s.fibers[s.current];
  if (mask != 0xffffffffu) {  // resin's kernels shuffle whole warps only
    std::fprintf(stderr, "emulated GPU: shuffle mask %#x is not emulated\n", mask);
    std::abort();
  }
  std::memcpy(f.value, value, static_cast<size_t>(bytes));
  f.bytes = bytes;
  f.lane_mask = lane_mask;
  suspend(State::at_shuffle);
  std::memcpy(value, s.fibers[s.current].value, static_cast<size_t>(bytes));
}

void run_grid(const void* kernel, dim3 grid, dim3 block, cudaStream_t stream,
              const std::vector<const void*>& pointers, const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    record_launch_error(cudaErrorInvalidConfiguration);
    return;
  }
  if (!stream_on_current_device(stream)) {
    record_launch_error(cudaErrorInvalidResourceHandle);
    return;
  }
  // A pointer a kernel is given must be device memory of this device: on a GPU a host pointer faults.
  for (const void* p : pointers) {
    if (p && device_of(p, 0) != current_device()) {
      std::fprintf(stderr, "emulated GPU: kernel argument %p is not device memory of cuda:%d\n", p,
                   current_device());
      record_launch_error(cudaErrorIllegalAddress);
      return;
    }
  }
  if (const std::string race = order_access(stream, pointers); !race.empty()) {
    std::fprintf(stderr, "emulated GPU: a kernel's argument: %s\n", race.c_str());
    record_launch_error(cudaErrorLaunchFailure);
    return;
  }
  if (t_running || t_direct) throw std::logic_error("emulated GPU: a kernel launched another kernel");
  gridDim = grid;
  blockDim = block;
  std::optional<bool> waits;
  {
    std::lock_guard<std::mutex> lock(g_kernels_mu);
    auto it = g_kernel_waits.find(kernel);
    if (it != g_kernel_waits.end()) waits = it->second;
  }
  if (waits == false) {  // plain calls, thread after thread
    struct DirectMode {
      DirectMode() { t_direct = true; }
      ~DirectMode() { t_direct = false; }
    } direct;
    for_each_block(grid, [&] {
      for (int64_t i = 0; i < static_cast<int64_t>(threads); ++i) {
        set_thread_index(static_cast<int>(nth(i, static_cast<int64_t>(threads))));
        body();
      }
      return true;
    });
    check_guards(pointers);
    return;
  }
  if (!t_scheduler) t_scheduler = std::make_unique<Scheduler>();
  Scheduler& s = *t_scheduler;
  s.count = static_cast<int>(threads);
  s.body = &body;
  t_running = &s;
  t_waited = false;
  const bool ok = for_each_block(grid, [&] { return run_block(s); });
  t_running = nullptr;
  if (ok && !waits.has_value()) {
    std::lock_guard<std::mutex> lock(g_kernels_mu);
    g_kernel_waits.emplace(kernel, t_waited);
  }
  if (!ok) record_launch_error(cudaErrorLaunchFailure);
  if (ok) check_guards(pointers);
}

}  // namespace resin::cuda_emulation
