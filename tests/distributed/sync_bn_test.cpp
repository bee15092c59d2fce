// Synchronized BatchNorm: in one process it is batch_norm (gradient-checked by finite
// differences); over two processes on halves of a batch it equals batch_norm on the whole batch —
// outputs, input gradients, parameter gradients (summed over ranks) and running statistics.
#include <gtest/gtest.h>

#include "../support/gradcheck.h"
#include "../support/on_device.h"
#include "multiprocess.h"
#include "resin/distributed/process_group.h"
#include "resin/distributed/sync_batch_norm.h"
#include "resin/nn/layers.h"

namespace resin::distributed {
namespace {

using resin::testing::describe;
using resin::testing::run_workers;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

// Both implementations: host loops (cpu) and tensor ops (any other device; cpu:1 here).
TEST(SyncBatchNorm, GradcheckInOneProcess) {
  auto comm = make_single_process_communicator();
  Generator g(3);
  const TensorOptions f64{.dtype = DType::f64};
  for (const Device d : {Device::cpu(), Device::placement_check()})
    for (const Shape& s : {Shape{5, 3, 2, 3}, Shape{6, 4}, Shape{4, 3, 5}, Shape{3, 2, 2, 2, 3}}) {
      testing::Inputs in{leaf(randn(s, f64, &g)), leaf(add(randn({s[1]}, f64, &g), 1.0)),
                         leaf(randn({s[1]}, f64, &g))};
      auto f = [&](const testing::Inputs& x) {
        return testing::Outputs{sync_batch_norm(x[0], {}, {}, x[1], x[2], 0.1, 1e-5, comm)};
      };
      auto r =
          testing::gradcheck(str_cat("sync_batch_norm", s.str(), " on ", d), testing::on_device(f, d), in);
      EXPECT_TRUE(r.ok) << r.message;
    }
}

// f64 runs on the reference loops, f32 on oneDNN (batch_norm); sync_batch_norm sums in f64 either way.
TEST(SyncBatchNorm, OneProcessEqualsBatchNorm) {
  auto comm = make_single_process_communicator();
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
    Generator g(4);
    const TensorOptions o{.dtype = dt};
    Tensor x = add(mul(randn({8, 3, 5, 5}, o, &g), 2.0), 3.0).contiguous(MemoryFormat::channels_last);
    Tensor w = randn({3}, o, &g), b = randn({3}, o, &g), dy = randn({8, 3, 5, 5}, o, &g);
    Tensor rm1 = zeros({3}, o), rv1 = ones({3}, o), rm2 = zeros({3}, o), rv2 = ones({3}, o);
    Tensor x1 = leaf(x.clone(MemoryFormat::channels_last)), w1 = leaf(w.clone()), x2 = leaf(x.clone()),
           w2 = leaf(w.clone());
    Tensor y1 = sync_batch_norm(x1, rm1, rv1, w1, b, 0.1, 1e-5, comm);
    Tensor y2 = batch_norm(x2, rm2, rv2, w2, b, true, 0.1, 1e-5);
    EXPECT_LT(max_abs_diff(y1, y2), tol) << dt;
    sum(y1 * dy).backward();
    sum(y2 * dy).backward();
    EXPECT_LT(max_abs_diff(x1.grad(), x2.grad()), tol) << dt;
    EXPECT_LT(max_abs_diff(w1.grad(), w2.grad()), tol * 10) << dt;
    EXPECT_LT(max_abs_diff(rm1, rm2), tol) << dt;
    EXPECT_LT(max_abs_diff(rv1, rv2), tol) << dt;
  }
  EXPECT_THROW(sync_batch_norm(randn({1, 3}), {}, {}, {}, {}, 0.1, 1e-5, comm), Error);  // one value per channel
  EXPECT_THROW(sync_batch_norm(randn({2, 3}), {}, {}, ones({4}), {}, 0.1, 1e-5, comm), Error);
}

// The placement-check device cpu:1 (core/device.h) stands in for a GPU: every tensor SyncBN makes
// must be on x's device (one left on the CPU is a device-mismatch error there), while its sums pass
// through the communicator's host memory. Off the CPU, SyncBN is the tensor-ops implementation: it
// must agree with the CPU's loops (f32 rounding apart).
TEST(SyncBatchNorm, OnAnotherDeviceMatchesTheCpu) {
  auto comm = make_single_process_communicator();
  const Device other = Device::placement_check();
  Generator g(6);
  const Tensor x = add(randn({6, 3, 4, 5}, {}, &g), 2.0).contiguous(MemoryFormat::channels_last);
  const Tensor dy = randn({6, 3, 4, 5}, {}, &g), w = randn({3}, {}, &g), b = randn({3}, {}, &g);
  auto run = [&](Device d) {
    Tensor xd = x.clone(MemoryFormat::channels_last).to(d), wd = w.clone().to(d), bd = b.clone().to(d);
    for (Tensor* t : {&xd, &wd, &bd}) t->set_requires_grad(true);
    Tensor rm = zeros({3}, {.device = d}), rv = ones({3}, {.device = d});
    Tensor y = sync_batch_norm(xd, rm, rv, wd, bd, 0.1, 1e-5, comm);
    sum(mul(y, dy.to(d))).backward();
    EXPECT_EQ(y.device(), d);
    EXPECT_TRUE(xd.grad().is_channels_last());
    return std::vector<Tensor>{y, xd.grad(), wd.grad(), bd.grad(), rm, rv};
  };
  const auto on_cpu = run(Device::cpu()), moved = run(other);
  const char* what[] = {"output",        "input gradient", "weight gradient",
                        "bias gradient", "running mean",   "running var"};
  for (size_t i = 0; i < on_cpu.size(); ++i)
    EXPECT_LT(max_abs_diff(moved[i], on_cpu[i]), i == 2 ? 2e-4 : 2e-5) << what[i];  // weight gradient: a sum
  // A parameter left on the CPU is named, with both devices.
  try {
    sync_batch_norm(x.to(other), {}, {}, w, {}, 0.1, 1e-5, comm);
    ADD_FAILURE() << "a weight on another device was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("on cpu for 3 channels of f32 on cpu:1"), std::string::npos)
        << e.what();
  }
}

TEST(SyncBatchNorm, ConvertReachesEveryBatchNorm) {
  nn::Sequential m({nn::BatchNorm2d({.features = 2}), nn::ReLU(), nn::BatchNorm2d({.features = 2})});
  EXPECT_EQ(convert_sync_batchnorm(m, make_single_process_communicator()), 2);
  for (size_t i : {0, 2}) EXPECT_TRUE(std::dynamic_pointer_cast<nn::BatchNorm>(m[i])->has_training_forward());
  m.eval();  // eval uses running statistics, with or without sync
  EXPECT_EQ(m.forward(ones({1, 2, 1, 1})).shape(), (Shape{1, 2, 1, 1}));
}

// Each rank holds half of an 8-image batch (every rank can build the whole batch from the seed,
// so it checks its half against batch_norm over the whole batch itself), in f64 and in f32 (the
// rounding of per-rank statistics combined in f64, against oneDNN's batch norm).
TEST(DistWorker, DISABLED_SyncBatchNormEqualsWholeBatch) {
  auto comm = init_process_group(dist_config_from_env());
  const int r = comm->rank(), w = comm->size();
  const int64_t per = 8 / w;
  // cpu:1: the tensor-ops implementation, its sums through Gloo's host memory.
  for (const Device d : {Device::cpu(), Device::placement_check()})
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(str_cat(dt, " on ", d));
      const double tol = dt == DType::f64 ? 1e-12 : 2e-5, stat_tol = dt == DType::f64 ? 1e-14 : 1e-6;
      Generator g(11);
      const TensorOptions o{.dtype = dt, .device = d};
      // Off-centre activations, as after a ReLU and a convolution: the mean matters.
      Tensor x = add(mul(randn({8, 3, 4, 4}, o, &g), 2.0), 3.0), dy = randn({8, 3, 4, 4}, o, &g);
      Tensor wt = randn({3}, o, &g), bias = randn({3}, o, &g);
      // Whole batch, one process.
      Tensor xf = leaf(x.clone()), wf = leaf(wt.clone()), bf = leaf(bias.clone());
      Tensor rmf = zeros({3}, o), rvf = ones({3}, o);
      Tensor yf = batch_norm(xf, rmf, rvf, wf, bf, true, 0.1, 1e-5);
      sum(yf * dy).backward();
      // This rank's half, synchronized.
      Tensor xr = leaf(x.narrow(0, r * per, per).clone()), wr = leaf(wt.clone()), br = leaf(bias.clone());
      Tensor rm = zeros({3}, o), rv = ones({3}, o);
      Tensor yr = sync_batch_norm(xr, rm, rv, wr, br, 0.1, 1e-5, comm);
      sum(yr * dy.narrow(0, r * per, per)).backward();  // rank losses sum to the whole-batch loss
      EXPECT_LT(max_abs_diff(yr, yf.narrow(0, r * per, per)), tol);
      EXPECT_LT(max_abs_diff(xr.grad(), xf.grad().narrow(0, r * per, per)), tol);
      Tensor gw = wr.grad().clone(), gb = br.grad().clone();
      comm->all_reduce(gw);  // parameter gradients are this rank's share
      comm->all_reduce(gb);
      EXPECT_LT(max_abs_diff(gw, wf.grad()), tol * 10);
      EXPECT_LT(max_abs_diff(gb, bf.grad()), tol * 10);
      EXPECT_LT(max_abs_diff(rm, rmf), stat_tol);
      EXPECT_LT(max_abs_diff(rv, rvf), stat_tol);
    }
}

TEST(Distributed, SyncBatchNormOnTwoRanksEqualsWholeBatch) {
  auto ex = run_workers("SyncBatchNormEqualsWholeBatch", 2, 60);
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

}  // namespace
}  // namespace resin::distributed
