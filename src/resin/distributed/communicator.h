// Communicator: the small interface resin's data parallelism needs from a collective library —
// rank, size, in-place sum all-reduce (blocking or asynchronous), broadcast and barrier, each with
// a timeout. Implementations: Gloo over TCP for CPUs (gloo_communicator.h), NCCL for GPUs
// (nccl_communicator.h, built with RESIN_WITH_NCCL) and a one-process group. Why Gloo and NCCL and
// not MPI: docs/distributed.md.
//
// Contract, as for every collective library:
//   * every rank issues the same collectives with the same shapes and dtypes in the same order;
//     asynchronous operations run one after another in issue order;
//   * a tensor handed to an operation must stay untouched (no reads, no writes) until its Work
//     completed; the Work keeps the tensor's storage alive;
//   * a failure — a peer closed its connection (it died), or nothing arrived within the timeout (it
//     hung, or the machine vanished) — throws resin::Error from wait() naming the operation, this
//     rank and the timeout. The group is then broken: every later operation throws at once, so a
//     failed run ends instead of hanging.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "resin/tensor/tensor.h"

namespace resin::distributed {

// The handle of an asynchronous operation.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the operation finished; throws resin::Error if it failed. Calling it again after
  // success returns at once.
  virtual void wait() = 0;
  virtual bool completed() const = 0;
  // Seconds the operation spent running in the library (not queued), once completed; 0 before.
  virtual double run_seconds() const = 0;
};
using WorkPtr = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "gloo", "nccl" or "single"
  virtual std::chrono::milliseconds timeout() const = 0;
  // Where the tensors it reduces best live: host memory for Gloo (which takes nothing else), this
  // rank's GPU for NCCL (which also takes host tensors, through a staging buffer).
  virtual Device device() const { return Device::cpu(); }

  // t: a contiguous f32, f64 or i64 tensor on this communicator's device. On completion every rank
  // holds the elementwise sum over all ranks (in place).
  virtual WorkPtr all_reduce_async(const Tensor& t) = 0;
  void all_reduce(const Tensor& t) { all_reduce_async(t)->wait(); }
  // t: contiguous, any dtype. On completion every rank holds root's values (in place).
  virtual WorkPtr broadcast_async(const Tensor& t, int root) = 0;
  void broadcast(const Tensor& t, int root = 0) { broadcast_async(t, root)->wait(); }
  // Returns once every rank has called it (or throws after the timeout).
  virtual void barrier() = 0;
};
using CommunicatorPtr = std::shared_ptr<Communicator>;

// A group of one process: all_reduce and broadcast leave the tensor as it is, barrier returns.
// Lets one code path serve single- and multi-process training, and gradient checks of the
// distributed ops run in one process.
CommunicatorPtr make_single_process_communicator();

// A Work that is already complete (for backends whose operation finished inside the call).
WorkPtr completed_work(double run_seconds = 0);

// Checks what every backend requires of an operation's tensor (defined, contiguous, dtype allowed
// for `op`); `op` names the operation in the error.
void check_collective_tensor(const Tensor& t, const char* op, bool reduction);

}  // namespace resin::distributed
