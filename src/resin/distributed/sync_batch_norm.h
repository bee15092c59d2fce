// Synchronized BatchNorm: batch statistics over the whole distributed batch instead of each
// process's shard (PyTorch's SyncBatchNorm). Data-parallel training keeps per-process statistics
// by default — cheaper, and what PyTorch's DDP does; SyncBN matters when the per-process batch is
// small, and makes N processes with batch B/N compute exactly what one process with batch B does.
//
// Per channel, with n_r elements on rank r and N = sum of n_r:
//   forward   all-reduce [sum x, sum x^2, n_r]   -> mean, var = E[x^2] - mean^2 (biased), invstd
//             y = (x - mean) * invstd * weight + bias
//   backward  all-reduce [sum dy, sum dy (x - mean)]
//             dx = weight * invstd * (dy - sum dy / N - (x - mean) * invstd^2 * sum dy (x - mean) / N)
// (dx is the gradient of the SUM of every rank's loss; DistributedDataParallel's averaging then
// makes it the gradient of the mean). weight and bias get this rank's share (local sums), which
// DistributedDataParallel averages like any parameter's gradient. On the CPU sums are accumulated
// in f64, so E[x^2] - mean^2 loses nothing that matters for f32 activations unless |mean| / std >
// ~1e4; off the CPU each rank sends [n mean, M2 + n mean^2, n] (its mean and squared deviations
// from it, reduced on the device) and the global M2 is recovered in f64.
// One all-reduce of 2C+1 doubles per layer in forward and of 2C in backward, issued on the
// calling thread through the communicator's queue (in the same order on every rank, as the graph
// is the same). Runs on x's device: loops over host memory on the CPU, tensor ops elsewhere (a GPU);
// the reduced sums pass through the communicator's device (host memory for Gloo, the rank's GPU
// for NCCL), and off the CPU the global count is read back to the host once per forward.
#pragma once
#include "resin/distributed/communicator.h"
#include "resin/nn/module.h"

namespace resin::distributed {

// x [N, C] or [N, C, *] (f32/f64, any layout, any device); weight/bias/running stats [C] of x's
// dtype and device, or undefined. Training-mode batch norm with
// statistics over every rank's x; running statistics (when given) are updated in place with the
// global mean and unbiased variance, as batch_norm does. Throws when the whole distributed batch
// holds a single value per channel. Every rank must call it with the same C and dtype.
Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double momentum, double eps,
                       const CommunicatorPtr& comm);

// Makes every nn::BatchNorm in `model` use sync_batch_norm over `comm` in training mode (eval
// mode keeps using the running statistics). Returns the number of layers converted.
int64_t convert_sync_batchnorm(nn::Module& model, const CommunicatorPtr& comm);

}  // namespace resin::distributed
