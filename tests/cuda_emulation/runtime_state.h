// What the emulated kernel launcher asks of the emulated runtime (runtime.cpp).
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace resin::cuda_emulation {

// Sets the error the next cudaGetLastError() returns, as a failed launch does.
void record_launch_error(cudaError_t e);

// Whether s is the null stream or an emulated stream created on the current device.
bool stream_on_current_device(cudaStream_t s);

// The device an emulated stream belongs to (the null stream: the current device); -1 when invalid.
int device_of_stream(cudaStream_t s);

// Stream order between streams, which a GPU does not check (a race there, silent garbage): work on
// stream s that uses device memory last used by work on another stream must be ordered after that
// work — s made to wait for an event recorded after it, or the host having waited for it (stream or
// event synchronisation, a completed event query). Checks the blocks `pointers` fall in, then
// records them as used by s. Returns what is unordered, or an empty string. The null stream is not
// checked. cuDNN and cuBLAS calls are not recorded (kernels, copies, fills and NCCL are).
std::string order_access(cudaStream_t s, const std::vector<const void*>& pointers);

}  // namespace resin::cuda_emulation
