// The NCCL communicator: collectives on GPU and host tensors, data-parallel training with DDP and
// SyncBN equal to one process on the whole batch, and its failure modes (a rank that never joins,
// two ranks on one GPU, a peer that exits or hangs) as clear errors, not hangs. Two-rank tests run
// as processes of this binary (tests/distributed/multiprocess.h), each on its own GPU: on a machine
// with two GPUs, or on the emulated GPU with two emulated devices and the emulated NCCL
// (tests/cuda_emulation/nccl.cpp). The one-rank tests need one GPU.
#ifdef RESIN_WITH_NCCL
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "../distributed/multiprocess.h"
#include "../support/error_of.h"
#include "../support/fake_fashion_mnist.h"
#include "gpu_util.h"
#include "resin/data/loader.h"
#include "resin/distributed/ddp.h"
#include "resin/distributed/nccl_communicator.h"
#include "resin/distributed/process_group.h"
#include "resin/distributed/sync_batch_norm.h"
#include "resin/distributed/tcp_store.h"
#include "resin/models/zoo.h"
#include "resin/optim/sgd.h"
#include "resin/train/checkpoint.h"

namespace resin::test {
namespace {

using distributed::CommunicatorPtr;
using resin::testing::describe;
using resin::testing::error_of;
using resin::testing::run_workers;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The environment of two-rank workers: unsharded (each runs its one worker test) and, on the
// emulated GPU, with `gpus` emulated devices.
resin::testing::Env workers_env(resin::testing::Env extra = {}, int gpus = 2) {
  extra.emplace_back("GTEST_TOTAL_SHARDS", "1");
  extra.emplace_back("GTEST_SHARD_INDEX", "0");
  if (backend::cuda::emulated_gpu()) extra.emplace_back("RESIN_CUDA_EMULATION_DEVICES", std::to_string(gpus));
  return extra;
}

#define RESIN_REQUIRE_TWO_GPUS()                                                                      \
  do {                                                                                                \
    RESIN_REQUIRE_GPU();                                                                              \
    if (!backend::cuda::emulated_gpu() && cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs"; \
  } while (0)

// A worker's communicator; the emulated NCCL meets in the worker's directory (removed afterwards).
CommunicatorPtr join_nccl() {
  if (const char* dir = std::getenv("RESIN_TEST_DIR")) ::setenv("RESIN_NCCL_EMULATION_DIR", dir, 1);
  distributed::DistConfig c = distributed::dist_config_from_env();
  c.backend = "nccl";
  c.local_rank = c.rank;  // one machine: rank r uses GPU r (modulo the GPUs there are) ...
  if (std::getenv("RESIN_TEST_SWAP_GPUS")) c.gpu = c.world_size - 1 - c.rank;  // ... unless told otherwise
  return distributed::init_process_group(c);
}

TEST(DistWorker, DISABLED_NcclCollectives) {
  auto comm = join_nccl();
  const int r = comm->rank(), w = comm->size();
  const Device gpu = comm->device();
  ASSERT_EQ(comm->backend(), "nccl");
  ASSERT_EQ(gpu, Device::cuda(std::getenv("RESIN_TEST_SWAP_GPUS") ? w - 1 - r : r)) << "one GPU per rank";
  Tensor f = from_vector({1.0 * (r + 1), 0.5, -2.0 * r}, {3}).to(gpu);
  Tensor d = from_vector({1e-300 * r, 1.0 / 3.0}, {2}, {.dtype = DType::f64}).to(gpu);
  Tensor i = from_data<int64_t>({int64_t{1} << 40, r}, {2}).to(gpu);
  Tensor h = from_vector({2.0 * r, 1.5}, {2});  // a host tensor: staged through the GPU
  // Several operations in flight, waited out of order.
  auto wf = comm->all_reduce_async(f);
  auto wd = comm->all_reduce_async(d);
  auto wi = comm->all_reduce_async(i);
  auto wh = comm->all_reduce_async(h);
  wi->wait();
  wd->wait();
  wf->wait();
  wh->wait();
  EXPECT_TRUE(wf->completed());
  const double tri = w * (w + 1) / 2.0, ranks = w * (w - 1) / 2.0;
  EXPECT_EQ(f.to(Device::cpu()).to_vector(), (std::vector<double>{tri, 0.5 * w, -2.0 * ranks}));
  EXPECT_EQ(d.to(Device::cpu()).to_vector()[0], 1e-300 * ranks);
  EXPECT_EQ(d.to(Device::cpu()).to_vector()[1], w * (1.0 / 3.0));
  EXPECT_EQ(i.to(Device::cpu()).values<int64_t>(),
            (std::vector<int64_t>{w * (int64_t{1} << 40), static_cast<int64_t>(ranks)}));
  EXPECT_EQ(h.to_vector(), (std::vector<double>{2.0 * ranks, 1.5 * w}));
  // Broadcast from the last rank, on the GPU and on the host, any dtype; an empty tensor is fine.
  Tensor b = from_data<uint8_t>({static_cast<uint8_t>(r), 7}, {2}).to(gpu);
  Tensor hb = from_vector({1.0 * r}, {1}, {.dtype = DType::f64});
  comm->broadcast(b, w - 1);
  comm->broadcast(hb, w - 1);
  EXPECT_EQ(b.to(Device::cpu()).values<uint8_t>(), (std::vector<uint8_t>{static_cast<uint8_t>(w - 1), 7}));
  EXPECT_EQ(hb.to_vector(), (std::vector<double>{w - 1.0}));
  comm->all_reduce(zeros({0}, {.device = gpu}));
  comm->barrier();
  // Bad input is an error, not a crash, and leaves the group usable.
  EXPECT_THROW(comm->all_reduce(zeros({2}, {.dtype = DType::u8, .device = gpu})), Error);
  EXPECT_THROW(comm->all_reduce(zeros({2, 2}, {.device = gpu}).transpose(0, 1)), Error);
  EXPECT_THROW(comm->broadcast(zeros({1}, {.device = gpu}), w), Error);
  const std::string other =
      error_of([&] { comm->all_reduce(zeros({2}, {.device = Device::cuda(1 - gpu.index)})); });
  EXPECT_TRUE(contains(other, "this rank's GPU is " + gpu.str())) << other;
  Tensor after = ones({4}, {.device = gpu});
  comm->all_reduce(after);
  EXPECT_EQ(after.to(Device::cpu()).to_vector(), std::vector<double>(4, w));
  // A Work dropped without wait(): its tensor's block goes back to the allocator's cache at once, and
  // the next tensor's work on it must wait for the collective (the emulated GPU checks that order).
  {
    Tensor dropped = ones({64}, {.device = gpu});
    (void)comm->all_reduce_async(dropped);
  }
  Tensor reused = full({64}, 2.0, {.device = gpu});
  comm->all_reduce(reused);
  EXPECT_EQ(reused.to(Device::cpu()).to_vector(), std::vector<double>(64, 2.0 * w));
}

TEST(CudaNccl, CollectivesOnTwoGpus) {
  RESIN_REQUIRE_TWO_GPUS();
  auto ex = run_workers("NcclCollectives", 2, 120, workers_env());
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

// A rank's GPU can be chosen (DistConfig::gpu, which `resin train --device cuda:N` sets): rank 0 on
// GPU 1 and rank 1 on GPU 0.
TEST(CudaNccl, CollectivesOnChosenGpus) {
  RESIN_REQUIRE_TWO_GPUS();
  auto ex = run_workers("NcclCollectives", 2, 120, workers_env({{"RESIN_TEST_SWAP_GPUS", "1"}}));
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

// DDP (gradient buckets on the GPU) and SyncBN over NCCL, each rank on half of every batch of 12, equal
// the same training in one process on the CPU over whole batches — every weight and running
// statistic after two epochs (8 steps of SGD with momentum), in f64.
TEST(DistWorker, DISABLED_NcclTrainsAsOneProcess) {
  auto comm = join_nccl();
  const int r = comm->rank(), w = comm->size();
  const int64_t n = 48, batch = 12;
  Generator g(5);
  std::vector<int64_t> labels;
  for (int64_t k = 0; k < n; ++k) labels.push_back((k * 7) % 10);
  auto data =
      std::make_shared<data::TensorDataset>(randn({n, 3, 8, 8}, {}, &g), from_data<int64_t>(labels, {n}), 10);
  auto make = [&](uint64_t seed) {
    manual_seed(seed);
    auto m =
        models::create_model("rescnn:n=1,width=4", {.in_channels = 3, .num_classes = 10, .image_size = 8});
    m->to(DType::f64);
    return m;
  };
  auto train = [&](nn::Module& m, data::DataLoader& loader, Device on,
                   distributed::DistributedDataParallel* ddp) {
    optim::Sgd opt(optim::weight_decay_param_groups(m.named_parameters(), 0.05, 5e-4),
                   {.momentum = 0.9, .nesterov = true});
    for (int64_t epoch = 0; epoch < 2; ++epoch) {
      loader.start_epoch(epoch);
      while (auto b = loader.next()) {
        cross_entropy(m.forward(b->images.to(DType::f64).to(on)), b->labels.to(on)).backward();
        if (ddp) ddp->synchronize_gradients();
        opt.step();
        opt.zero_grad();
      }
    }
  };
  auto ref = make(1);
  data::DataLoader one(data, {.batch_size = batch, .shuffle = true, .drop_last = true, .seed = 3});
  train(*ref, one, Device::cpu(), nullptr);

  auto model = make(r == 0 ? 1 : 2);  // rank 1 starts elsewhere: DDP's broadcast must fix that
  EXPECT_GT(distributed::convert_sync_batchnorm(*model, comm), 0);
  model->to(comm->device());
  distributed::DistributedDataParallel ddp(*model, comm, {.bucket_bytes = 2048, .first_bucket_bytes = 512});
  EXPECT_GT(ddp.num_buckets(), 2);
  data::DataLoader mine(
      data,
      {.batch_size = batch / w, .shuffle = true, .drop_last = true, .seed = 3, .num_replicas = w, .rank = r});
  train(*model, mine, comm->device(), &ddp);

  const auto want = ref->state_dict();
  for (auto& [name, t] : model->state_dict()) {
    if (t.dtype() == DType::f64) {  // (num_batches_tracked is a host counter)
      EXPECT_EQ(t.device(), comm->device()) << name;
    }
    const auto a = t.to(Device::cpu()).to_vector(), b = want.at(name).to_vector();
    double worst = 0;
    for (size_t k = 0; k < a.size(); ++k)
      worst = std::max(worst, std::abs(a[k] - b[k]) / (1e-3 + std::abs(b[k])));
    EXPECT_LT(worst, 1e-9) << name << " on rank " << r;
  }
  EXPECT_EQ(ddp.stats().iterations, 8);
}

TEST(CudaNccl, DdpAndSyncBatchNormOnTwoGpusEqualOneProcess) {
  RESIN_REQUIRE_TWO_GPUS();
  auto ex = run_workers("NcclTrainsAsOneProcess", 2, 300, workers_env());
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

// Rank 1 exits (or hangs, then exits) after joining; rank 0's next collective fails with a clear
// error, and every later one at once.
TEST(DistWorker, DISABLED_NcclPeerFailure) {
  auto comm = join_nccl();
  const bool hang = std::getenv("RESIN_TEST_HANG") != nullptr;
  comm->barrier();
  const double timeout = comm->timeout().count() / 1000.0;
  if (comm->rank() == 1) {
    if (hang) std::this_thread::sleep_for(std::chrono::duration<double>(timeout + 1.5));
    ::_exit(0);
  }
  Tensor t = ones({1000}, {.device = comm->device()});
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { comm->all_reduce(t); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(contains(e, "all_reduce failed on rank 0 of 2")) << e;
  EXPECT_TRUE(contains(e, "Another rank probably exited or stopped responding")) << e;
  EXPECT_LT(secs, timeout + 3) << e;  // a dead peer may take the timeout on a GPU; never a hang
  if (hang) {
    EXPECT_GT(secs, timeout - 0.1) << e;
  }
  const std::string later = error_of([&] { comm->all_reduce(t); });
  EXPECT_TRUE(contains(later, "the group failed earlier")) << later;
}

TEST(CudaNccl, ADeadPeerFailsTheOtherRank) {
  RESIN_REQUIRE_TWO_GPUS();
  auto ex = run_workers("NcclPeerFailure", 2, 60, workers_env({{"RESIN_DIST_TIMEOUT", "5"}}));
  EXPECT_EQ(ex[0].code, 0) << describe(ex);
}

// Silent: the emulated NCCL gives up after the communicator's timeout, as the communicator does on a GPU.
TEST(CudaNccl, ASilentPeerFailsTheOtherRankAfterTheTimeout) {
  RESIN_REQUIRE_TWO_GPUS();
  auto ex = run_workers("NcclPeerFailure", 2, 60,
                        workers_env({{"RESIN_DIST_TIMEOUT", "2"}, {"RESIN_TEST_HANG", "1"}}));
  EXPECT_EQ(ex[0].code, 0) << describe(ex);
}

TEST(DistWorker, DISABLED_NcclInitFails) {
  const std::string e = error_of([] { join_nccl(); });
  EXPECT_TRUE(contains(e, "ncclCommInitRank failed on rank")) << e;
  EXPECT_TRUE(contains(e, std::getenv("RESIN_TEST_EXPECT"))) << e;
  EXPECT_TRUE(contains(e, "--dist-backend gloo lets ranks share one")) << e;
  EXPECT_FALSE(contains(e, "Another rank probably")) << "a local error, not a peer's: " << e;
}

// NCCL refuses two ranks on one GPU; the communicator reports it at initialisation.
TEST(CudaNccl, TwoRanksOnOneGpuAreRefused) {
  RESIN_REQUIRE_GPU();
  if (!backend::cuda::emulated_gpu() && cuda::device_count() > 1)
    GTEST_SKIP() << "the ranks would get one GPU each";
  // "invalid usage": ncclGetErrorString(ncclInvalidUsage), NCCL's answer to a duplicate GPU.
  auto ex =
      run_workers("NcclInitFails", 2, 60,
                  workers_env({{"RESIN_TEST_EXPECT", "invalid usage"}, {"RESIN_DIST_TIMEOUT", "10"}}, 1));
  for (auto& e : ex) EXPECT_EQ(e.code, 0) << describe(ex);
}

// `resin launch -n 2 -- resin train --device cuda --sync-bn`, as on a machine with two GPUs, chooses
// NCCL (--dist-backend auto) and ends with the weights of one process with the same global batch of
// 32 (8 steps on 256 fake Fashion-MNIST images); with one GPU visible it chooses Gloo. On the emulated GPU it
// runs the CLI built for it (resin-emulated-gpu).
TEST(CudaNccl, TrainCliTwoProcessesEqualOneProcess) {
  RESIN_REQUIRE_TWO_GPUS();
  using resin::testing::Exit;
  const bool emulated = backend::cuda::emulated_gpu();
  const std::string resin = std::string(RESIN_BINARY_DIR) + (emulated ? "/resin-emulated-gpu" : "/resin");
  const std::string dir = resin::testing::fresh_dir("nccl_train");
  const std::string data = write_fake_fashion_mnist(dir + "/fmnist", 256, 100);
  const resin::testing::Env gpus = workers_env({{"OMP_NUM_THREADS", "1"}, {"RESIN_NCCL_EMULATION_DIR", dir}});
  // `launcher`: the words before "train" (none for one process).
  auto train = [&](const std::string& out, const std::vector<std::string>& launcher,
                   const resin::testing::Env& env,
                   const std::vector<std::string>& device = {"--device", "cuda"}) {
    std::vector<std::string> argv = {resin};
    argv.insert(argv.end(), launcher.begin(), launcher.end());
    argv.insert(argv.end(), {"train",      "--model",   "rescnn:n=1,width=4",
                             "--data-dir", data,        "--batch-size",
                             "32",         "--epochs",  "1",
                             "--lr",       "0.02",      "--no-augment",
                             "--threads",  "1",         "--workers",
                             "0",          "--sync-bn", "--progress",
                             "lines",      "--out",     dir + "/" + out});
    argv.insert(argv.end(), device.begin(), device.end());
    return resin::testing::wait_exit(resin::testing::spawn(argv, env, dir + "/" + out + ".log"), 600);
  };
  const Exit one = train("one", {}, gpus);
  ASSERT_EQ(one.code, 0) << one.output;
  const Exit two = train("two", {"launch", "-n", "2", "--", "resin"}, gpus);
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_TRUE(contains(two.output, "data parallel: 2 processes (nccl), 16 images each per step"))
      << two.output;
  EXPECT_TRUE(contains(two.output, "synchronized BatchNorm")) << two.output;
  // Same weights up to the order of floating-point sums (2.6e-6 on the CPU: train_cli_test.cpp).
  const auto a = train::load_weights(dir + "/one/weights.safetensors");
  const auto b = train::load_weights(dir + "/two/weights.safetensors");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    const auto x = t.to_vector(), y = b.at(name).to_vector();
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(x[k] - y[k]));
  }
  EXPECT_LT(worst, 2e-5);
  // Two processes on one GPU: auto takes Gloo (NCCL refuses a GPU shared by two ranks).
  const Exit shared = train("shared", {"launch", "-n", "2", "--", "resin"},
                            workers_env({{"OMP_NUM_THREADS", "1"}, {"CUDA_VISIBLE_DEVICES", "0"}}, 1));
  ASSERT_EQ(shared.code, 0) << shared.output;
  EXPECT_TRUE(contains(shared.output, "data parallel: 2 processes (gloo)")) << shared.output;
  // NCCL works on each rank's --device: `cuda:1` for both ranks is one GPU for two, which it refuses.
  const Exit same = train("same", {"launch", "-n", "2", "--", "resin"}, gpus,
                          {"--device", "cuda:1", "--dist-backend", "nccl", "--dist-timeout", "20"});
  EXPECT_NE(same.code, 0) << same.output;
  EXPECT_TRUE(contains(same.output, "NCCL needs a GPU of its own for every rank")) << same.output;
  std::filesystem::remove_all(dir);
}

// One rank, in this process: the collectives are identities, on the GPU and through the staging
// buffer; a world of two whose second rank never comes ends in a timeout, not a hang.
TEST(CudaNccl, OneRankAndARankThatNeverJoins) {
  RESIN_REQUIRE_GPU();
  const std::string dir = resin::testing::fresh_dir("nccl_one_rank");
  ::setenv("RESIN_NCCL_EMULATION_DIR", dir.c_str(), 1);
  {
    auto store = std::make_shared<distributed::TcpStore>("127.0.0.1", 0, true, std::chrono::seconds(10));
    auto comm = distributed::make_nccl_communicator(store, 0, 1, 0, std::chrono::seconds(10));
    EXPECT_EQ(comm->device(), gpu_device());
    Tensor d = from_vector({1.5, -2.0, 3.25}, {3}).to(gpu_device());
    Tensor h = from_vector({7.0}, {1}, {.dtype = DType::f64});
    comm->all_reduce(d);
    comm->all_reduce(h);
    comm->broadcast(d, 0);
    comm->barrier();
    EXPECT_EQ(d.to(Device::cpu()).to_vector(), (std::vector<double>{1.5, -2.0, 3.25}));
    EXPECT_EQ(h.to_vector(), (std::vector<double>{7.0}));
  }
  auto store = std::make_shared<distributed::TcpStore>("127.0.0.1", 0, true, std::chrono::seconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e =
      error_of([&] { distributed::make_nccl_communicator(store, 0, 2, 0, std::chrono::milliseconds(1000)); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(contains(e, "ncclCommInitRank failed on rank 0 of 2: timed out after 1")) << e;
  EXPECT_GT(secs, 0.9);
  EXPECT_LT(secs, 5.0);
  ::unsetenv("RESIN_NCCL_EMULATION_DIR");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace resin::test
#endif  // RESIN_WITH_NCCL
