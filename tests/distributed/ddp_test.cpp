// DistributedDataParallel: bucketing and overlap (in one process, against a recording
// communicator), and the equivalence data parallelism promises — 2 processes with batch B/2 each
// end with the weights of 1 process with batch B, from the same initialisation and data order.
#include <gtest/gtest.h>

#include <algorithm>

#include "multiprocess.h"
#include "resin/data/loader.h"
#include "resin/distributed/ddp.h"
#include "resin/distributed/process_group.h"
#include "resin/distributed/sync_batch_norm.h"
#include "resin/models/zoo.h"
#include "resin/nn/layers.h"
#include "resin/optim/optim.h"

namespace resin::distributed {
namespace {

using resin::testing::describe;
using resin::testing::run_workers;

// Pretends to be rank 0 of two identical replicas: all_reduce doubles the tensor. Records, for
// each all_reduce, how many of the model's parameters had a gradient when it was issued.
// `where`: the device it reports (and on which the reducer must put its buckets), as NCCL reports
// its GPU.
class RecordingPair final : public Communicator {
 public:
  explicit RecordingPair(std::vector<Tensor> params, Device where = Device::cpu())
      : params_(std::move(params)), where_(where) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend() const override { return "recording"; }
  Device device() const override { return where_; }
  std::chrono::milliseconds timeout() const override { return std::chrono::milliseconds(1000); }
  WorkPtr all_reduce_async(const Tensor& t) override {
    int64_t with_grad = 0;
    for (auto& p : params_) with_grad += p.grad().defined();
    grads_ready_at_launch.push_back(with_grad);
    EXPECT_EQ(t.device(), where_);
    float* d = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] *= 2;
    return completed_work();
  }
  WorkPtr broadcast_async(const Tensor&, int) override {
    ++broadcasts;
    return completed_work();
  }
  void barrier() override {}
  std::vector<int64_t> grads_ready_at_launch;
  int broadcasts = 0;

 private:
  std::vector<Tensor> params_;
  Device where_;
};

nn::ModulePtr small_resnet(uint64_t seed) {
  manual_seed(seed);
  return models::create_model("rescnn:n=1,width=4", {.in_channels = 3, .num_classes = 10, .image_size = 8});
}

TEST(Ddp, BucketsLaunchDuringBackwardAndAverage) {
  auto model = small_resnet(1), twin = small_resnet(1);
  auto comm = std::make_shared<RecordingPair>(model->parameters());
  DistributedDataParallel ddp(*model, comm, {.bucket_bytes = 1024, .first_bucket_bytes = 256});
  EXPECT_EQ(comm->broadcasts, 1);  // parameters and buffers in one broadcast
  const int64_t nparams = static_cast<int64_t>(model->parameters().size());
  EXPECT_GT(ddp.num_buckets(), 3);
  EXPECT_EQ(ddp.stats().bytes_per_iteration, model->parameter_count() * 4);

  Generator g(2);
  Tensor x = randn({4, 3, 8, 8}, {}, &g), y = randint(0, 10, {4}, {.dtype = DType::i64}, &g);
  cross_entropy(model->forward(x), y).backward();
  // Every bucket was issued inside backward, the first while most gradients did not exist yet.
  ASSERT_EQ(static_cast<int64_t>(comm->grads_ready_at_launch.size()), ddp.num_buckets());
  EXPECT_LT(comm->grads_ready_at_launch.front(), nparams / 2);
  EXPECT_TRUE(std::is_sorted(comm->grads_ready_at_launch.begin(), comm->grads_ready_at_launch.end()));
  ddp.synchronize_gradients();
  EXPECT_EQ(comm->grads_ready_at_launch.size(), static_cast<size_t>(ddp.num_buckets()));  // nothing left to launch
  // The average of two identical replicas is the replica's own gradient.
  cross_entropy(twin->forward(x), y).backward();
  auto a = model->named_parameters(), b = twin->named_parameters();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].second.grad().to_vector(), b[i].second.grad().to_vector()) << a[i].first;
  EXPECT_EQ(ddp.stats().iterations, 1);

  // A second backward before synchronising is refused.
  model->zero_grad();
  Tensor out = model->forward(x);
  cross_entropy(out, y).backward({}, true);
  EXPECT_THROW(cross_entropy(out, y).backward(), Error);
  ddp.synchronize_gradients();
}

// A model on another device (the placement check cpu:1 stands in for a GPU), with buckets on the
// host (as for Gloo) or on the model's device (as for NCCL): the averaged gradients are the CPU
// model's, bit for bit, and stay on the model's device.
TEST(Ddp, AveragesOnAnotherDeviceWithBucketsOnEitherSide) {
  const Device dev = Device::placement_check();
  Generator g(2);
  const Tensor x = randn({4, 3, 8, 8}, {}, &g), y = randint(0, 10, {4}, {.dtype = DType::i64}, &g);
  auto on_cpu = small_resnet(1);
  cross_entropy(on_cpu->forward(x), y).backward();
  for (const Device buckets : {Device::cpu(), dev}) {
    auto model = small_resnet(1);
    model->to(dev);
    DistributedDataParallel ddp(*model, std::make_shared<RecordingPair>(model->parameters(), buckets),
                                {.bucket_bytes = 1024, .first_bucket_bytes = 256});
    cross_entropy(model->forward(x.to(dev)), y.to(dev)).backward();
    ddp.synchronize_gradients();
    auto a = model->named_parameters(), b = on_cpu->named_parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].second.grad().device(), dev) << a[i].first;
      EXPECT_EQ(a[i].second.grad().to_vector(), b[i].second.grad().to_vector()) << a[i].first;
    }
  }
}

// A parameter that got no gradient in this backward contributes zeros and ends with a gradient.
TEST(Ddp, UnusedParameterGetsTheAverage) {
  struct TwoHeads : nn::Module {
    std::shared_ptr<nn::Linear> used, unused;
    TwoHeads() {
      used = register_module("used", std::make_shared<nn::Linear>(nn::LinearOptions{.in = 3, .out = 2}));
      unused = register_module("unused", std::make_shared<nn::Linear>(nn::LinearOptions{.in = 3, .out = 2}));
    }
    std::string type_name() const override { return "TwoHeads"; }
    Tensor forward(const Tensor& x) override { return used->forward(x); }
  } m;
  DistributedDataParallel ddp(m, std::make_shared<RecordingPair>(m.parameters()));
  sum(m.forward(ones({2, 3}))).backward();
  ddp.synchronize_gradients();
  EXPECT_EQ(m.unused->weight().grad().to_vector(), std::vector<double>(6, 0.0));
  EXPECT_EQ(m.used->bias().grad().to_vector(), (std::vector<double>{2, 2}));
}

TEST(Ddp, HooksDieWithTheReducer) {
  auto model = small_resnet(1);
  {
    DistributedDataParallel ddp(*model, std::make_shared<RecordingPair>(model->parameters()));
  }
  Tensor x = randn({2, 3, 8, 8});
  sum(model->forward(x)).backward();  // no reducer, no crash
  EXPECT_TRUE(model->parameters().front().grad().defined());
}

// Trains `spec` for 2 epochs of SGD in f64 in one process (batch 12), then data-parallel on this
// rank (batch 12 / world from its shard), and compares every parameter and buffer.
void expect_data_parallel_equals_one_process(const CommunicatorPtr& comm, const std::string& spec, bool sync_bn) {
  const int r = comm->rank(), w = comm->size();
  const int64_t n = 48, batch = 12;
  Generator g(5);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back((i * 7) % 10);
  auto data = std::make_shared<data::TensorDataset>(randn({n, 3, 8, 8}, {}, &g), from_data<int64_t>(labels, {n}), 10);
  auto make = [&](uint64_t seed) {
    manual_seed(seed);
    auto m = models::create_model(spec, {.in_channels = 3, .num_classes = 10, .image_size = 8});
    m->to(DType::f64);
    return m;
  };
  auto train = [&](nn::Module& m, data::DataLoader& loader, DistributedDataParallel* ddp) {
    optim::Sgd opt(optim::weight_decay_param_groups(m.named_parameters(), 0.05, 5e-4),
                   {.momentum = 0.9, .nesterov = true});
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      loader.start_epoch(epoch);
      while (auto b = loader.next()) {
        cross_entropy(m.forward(b->images.to(DType::f64)), b->labels).backward();
        if (ddp) ddp->synchronize_gradients();
        opt.step();
        opt.zero_grad();
      }
    }
  };
  auto ref = make(1);
  data::DataLoader one(data, {.batch_size = batch, .shuffle = true, .drop_last = true, .seed = 3});
  train(*ref, one, nullptr);

  auto model = make(r == 0 ? 1 : 2);  // other ranks start elsewhere: the broadcast must fix that
  if (sync_bn) {
    EXPECT_GT(convert_sync_batchnorm(*model, comm), 0);
  }
  DistributedDataParallel ddp(*model, comm, {.bucket_bytes = 2048, .first_bucket_bytes = 512});
  EXPECT_GT(ddp.num_buckets(), 2);
  data::DataLoader mine(data, {.batch_size = batch / w, .shuffle = true, .drop_last = true, .seed = 3,
                               .num_replicas = w, .rank = r});
  train(*model, mine, &ddp);

  const auto want = ref->state_dict();
  for (auto& [name, t] : model->state_dict()) {
    const auto a = t.to_vector(), b = want.at(name).to_vector();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / (1e-3 + std::abs(b[i])));
    EXPECT_LT(worst, 1e-10) << spec << ": " << name << " on rank " << r;
  }
  EXPECT_EQ(ddp.stats().iterations, 8);
  EXPECT_GT(ddp.stats().all_reduce_seconds, 0);
}

TEST(DistWorker, DISABLED_DdpEquivalence) {
  auto comm = init_process_group(dist_config_from_env());
  expect_data_parallel_equals_one_process(comm, "rescnn:n=1,width=4", true);
  expect_data_parallel_equals_one_process(comm, "resmlp:width=16,blocks=2,norm=0", false);
}

TEST(Distributed, TwoProcessesEqualOneProcess) {
  auto ex = run_workers("DdpEquivalence", 2, 120);
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

}  // namespace
}  // namespace resin::distributed
