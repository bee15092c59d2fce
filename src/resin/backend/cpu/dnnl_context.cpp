// Engine, stream and execution for the oneDNN kernels.
#include "resin/backend/cpu/dnnl_context.h"

#include <omp.h>

#include <mutex>

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
