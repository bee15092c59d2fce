// The GPU communicator: NCCL (in /usr/local/cuda on CUDA machines), built with RESIN_WITH_NCCL.
// When nccl.h exists but the option is off, CMake still compiles this file (resin_nccl_compile_check)
// so it keeps compiling on machines without GPUs.
//
// One NCCL communicator per process, on GPU `gpu`, or `local_rank % device count` when gpu is -1. Rank 0
// makes the NCCL unique id and shares it through the rendezvous store. Operations are enqueued on one CUDA
// stream, so they run in issue order; Work::wait() polls the operation's completion event and
// NCCL's asynchronous error state and aborts the communicator after the timeout — NCCL itself
// would wait for a dead peer forever.
//
// Tensors: device memory is used in place. Host (CPU) tensors are staged through a device buffer,
// which makes their operations effectively synchronous; resin's CPU training uses Gloo instead.
#pragma once
#include <chrono>
#include <memory>

#include "resin/distributed/communicator.h"
#include "resin/distributed/tcp_store.h"

namespace resin::distributed {

CommunicatorPtr make_nccl_communicator(std::shared_ptr<Store> store, int rank, int size, int local_rank,
                                       std::chrono::milliseconds timeout, int gpu = -1);

}  // namespace resin::distributed
