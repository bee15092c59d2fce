// Synchronized BatchNorm: batch statistics over the whole distributed batch instead of each
// process's shard (PyTorch's SyncBatchNorm). By default data-parallel training keeps per-process
// statistics, which is cheaper and what PyTorch's DDP does; SyncBN matters when the per-process
// batch is small.
//
// sync_batch_norm is built from differentiable ops plus one differentiable collective,
// all_reduce_sum, so its backward is autograd's: per channel, with N elements over all ranks,
//   S1 = all_reduce_sum([sum(x), count])       mean = S1 / N
//   S2 = all_reduce_sum(sum((x - mean)^2))     var  = S2 / N   (two passes: no cancellation)
//   y  = (x - mean) * rsqrt(var + eps) * weight + bias
// and all_reduce_sum's backward all-reduces the incoming gradient — the two reductions of
// PyTorch's SyncBN backward (sum of dy, sum of dy * (x - mean)). weight and bias get this rank's
// share of their gradient; DistributedDataParallel then averages them like any parameter.
// Cost: two all-reduces of C+1 and C values in forward, two more in backward, per layer.
#pragma once
#include "resin/distributed/communicator.h"
#include "resin/nn/module.h"

namespace resin::distributed {

// Differentiable sum over ranks: forward returns a new tensor holding the elementwise sum of x
// over all ranks; backward all-reduces the gradient (the gradient of the sum of every rank's
// loss). Every rank must call it with the same shape and dtype (f32 or f64).
Tensor all_reduce_sum(const Tensor& x, const CommunicatorPtr& comm);

// x [N, C] or [N, C, *] (f32/f64, any layout); weight/bias/running stats [C] or undefined.
// Training-mode batch norm with statistics over every rank's x; running statistics (when given)
// are updated in place with the global mean and unbiased variance, as batch_norm does. Throws when
// the global batch has a single value per channel.
Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double momentum, double eps,
                       const CommunicatorPtr& comm);

// Makes every nn::BatchNorm in `model` use sync_batch_norm over `comm` in training mode (eval
// mode keeps using the running statistics). Returns the number of layers converted.
int64_t convert_sync_batchnorm(nn::Module& model, const CommunicatorPtr& comm);

}  // namespace resin::distributed
