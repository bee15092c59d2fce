// Engine, stream and execution for the oneDNN kernels.
#include "resin/backend/cpu/dnnl_context.h"

#include <omp.h>

#include <mutex>
#include <string>
#include <utility>

#include "resin/backend/backend.h"
#include "resin/backend/cpu/primitive_cache.h"
#include "resin/core/error.h"

namespace resin::backend::onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}

void execute(const char* op, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args,
             int max_threads) {
  detail::count_executed();
  // One stream, and the default oneDNN build shares scratchpads between executions: kernels called
  // from several threads run one at a time (each already uses every core through OpenMP).
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const int saved = omp_get_max_threads();
  if (max_threads > 0 && max_threads < saved) omp_set_num_threads(max_threads);
  try {
    p.execute(stream(), args);
    stream().wait();
  } catch (const dnnl::error& e) {
    omp_set_num_threads(saved);
    RESIN_FAIL(op, ": oneDNN failed: ", e.what());
  }
  omp_set_num_threads(saved);
}

}  // namespace resin::backend::onednn

namespace resin::backend {

namespace {
// dnnl_cpu_isa_t values are feature masks: an ISA includes another when it has all its bits.
bool isa_has(dnnl::cpu_isa isa, dnnl::cpu_isa want) {
  return (static_cast<unsigned>(isa) & static_cast<unsigned>(want)) == static_cast<unsigned>(want);
}
}  // namespace

bool bf16_compute_supported() {
  static const bool ok = isa_has(dnnl::get_effective_cpu_isa(), dnnl::cpu_isa::avx512_core_bf16);
  return ok;
}

std::string cpu_isa_name() {
  using I = dnnl::cpu_isa;
  const I isa = dnnl::get_effective_cpu_isa();
  const std::pair<I, const char*> names[] = {
      {I::avx512_core_amx, "avx512_core_amx"}, {I::avx512_core_bf16, "avx512_core_bf16"},
      {I::avx512_core_vnni, "avx512_core_vnni"}, {I::avx512_core, "avx512_core"}, {I::avx2_vnni, "avx2_vnni"},
      {I::avx2, "avx2"}, {I::avx, "avx"}, {I::sse41, "sse41"}};
  for (auto [i, name] : names)
    if (isa_has(isa, i)) return name;
  return "unknown";
}

}  // namespace resin::backend
