// DistributedDataParallel: gradient averaging for data-parallel training, as PyTorch's DDP does it.
// Every process holds a replica of the model and runs forward/backward on its own shard of the
// batch; the gradients are then averaged over the processes, so every replica takes the same
// optimizer step:
//
//   distributed::DistributedDataParallel ddp(*model, comm);   // broadcasts rank 0's state
//   loss.backward();                  // buckets are all-reduced while backward goes on
//   ddp.synchronize_gradients();      // waits; every .grad() now holds the average over ranks
//   opt.step();
//
// Buckets: the parameters that require grad, in REVERSE registration order (roughly the order in
// which backward produces their gradients), are grouped into buckets of about bucket_bytes (the
// first, launched first, holds at most min(first_bucket_bytes, bucket_bytes) so communication
// starts early). A
// post-accumulate hook on every parameter copies its gradient into its bucket's flat buffer; when a
// bucket is complete it is all-reduced asynchronously — in bucket order, on every rank the same
// order, as collectives require — while backward continues on the next layers.
//
// Contract:
//   * one backward per synchronize_gradients() (gradient accumulation over several backwards is
//     not supported: a second gradient for a parameter before synchronising throws);
//   * every rank runs the same model (same parameter list, shapes, dtypes and layouts) and calls
//     backward and synchronize_gradients() in step;
//   * a parameter that got no gradient on a rank (unused in that forward) contributes zeros; after
//     synchronising it holds the average of what the ranks had (zeros if no rank used it), so
//     optimizers that skip parameters without gradients do not skip it;
//   * the model must outlive this object; destroying it disables its hooks.
#pragma once
#include <memory>

#include "resin/distributed/communicator.h"
#include "resin/nn/module.h"

namespace resin::distributed {

struct DdpOptions {
  int64_t bucket_bytes = 25 << 20;       // PyTorch's bucket_cap_mb = 25
  int64_t first_bucket_bytes = 1 << 20;  // PyTorch's first-bucket cap
  bool broadcast_state = true;           // copy rank 0's parameters and buffers at construction
};

// Communication timing, summed over all synchronisations since construction.
struct DdpStats {
  int64_t iterations = 0;
  int64_t buckets = 0;              // per iteration
  int64_t bytes_per_iteration = 0;  // gradient bytes all-reduced per iteration
  double all_reduce_seconds = 0;    // time the collectives ran (measured by the communicator)
  double wait_seconds = 0;          // time synchronize_gradients() blocked: the exposed part
  // Share of the all-reduce time hidden behind backward: 1 - wait / all_reduce (in [0, 1]).
  double hidden_fraction() const;
};

class DistributedDataParallel {
 public:
  DistributedDataParallel(nn::Module& model, CommunicatorPtr comm, DdpOptions o = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // Launches the buckets backward did not complete, waits for all of them and writes the average
  // over ranks into every parameter's .grad(). Throws resin::Error if a collective failed.
  void synchronize_gradients();
  // Copies rank 0's parameters and buffers to every rank (one broadcast).
  void broadcast_state();
  // Copies rank 0's buffers (BatchNorm running statistics) to every rank, as PyTorch's DDP does
  // before each forward; resin's trainer does it before evaluating and checkpointing.
  void broadcast_buffers();

  const Communicator& communicator() const;
  int64_t num_buckets() const;
  DdpStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the hooks through weak_ptr
};

}  // namespace resin::distributed
