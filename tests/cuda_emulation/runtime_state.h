// What the emulated kernel launcher asks of the emulated runtime (runtime.cpp).
#pragma once
#include <cuda_runtime.h>

namespace resin::cuda_emulation {

// Sets the error the next cudaGetLastError() returns, as a failed launch does.
void record_launch_error(cudaError_t e);

// Whether s is the null stream or an emulated stream created on the current device.
bool stream_on_current_device(cudaStream_t s);

// The device an emulated stream belongs to (the null stream: the current device); -1 when invalid.
int device_of_stream(cudaStream_t s);

}  // namespace resin::cuda_emulation
