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
void execute(const char* op, const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);

}  // namespace resin::backend::onednn
