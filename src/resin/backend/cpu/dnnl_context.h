// The one oneDNN CPU engine and stream of the process, and primitive execution. Internal to
// backend/cpu: kernels include dnnl_util.h, which includes this; the rest of resin never sees oneDNN.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

namespace resin::backend::onednn {

dnnl::engine& engine();
dnnl::stream& stream();

// Runs a primitive on the stream and waits; a dnnl::error becomes a resin::Error naming `op`.
// Executions are serialised across threads. Counts executions for CpuBackend::cache_stats().
// max_threads > 0 caps the OpenMP threads of this execution (oneDNN reads omp_get_max_threads()
// when it runs a primitive; 1 runs it on the calling thread without a parallel region).
void execute(const char* op, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args,
             int max_threads = 0);

}  // namespace resin::backend::onednn
