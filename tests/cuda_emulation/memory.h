// The emulated GPU's memory, shared by the emulated CUDA runtime, cuBLAS and cuDNN (docs/cuda.md,
// "Emulated GPU"). Device memory is host memory the emulation hands out and remembers, so every
// library call can refuse a pointer that a real GPU could not read.
#pragma once
#include <cstddef>
#include <string>

namespace resin::cuda_emulation {

// Device addresses are never accessible to the host (dereferencing one faults, as with a GPU); the
// emulated kernels, copies and libraries reach a block's bytes through this. Other pointers (host
// memory, null) come back unchanged.
void* host_view(const void* device_pointer);

// Number of emulated devices (RESIN_CUDA_EMULATION_DEVICES, default 1).
int device_count();

// The device whose allocation holds [p, p + bytes), or -1 when the range is not wholly inside one
// live cudaMalloc block (a host pointer, freed memory, or a range running past the block's end).
int device_of(const void* p, size_t bytes = 1);

// Every block has guard zones before and after it; false (with the block's address and size in
// `where`) when a write landed in one of the block that holds p. True for pointers outside blocks.
bool guards_intact(const void* p, std::string* where);

// The device most recently made current by cudaSetDevice on this thread (0 before any call).
int current_device();

}  // namespace resin::cuda_emulation
