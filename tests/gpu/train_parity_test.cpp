// Training parity: the same network trained on the CPU and on the GPU from the same weights, on
// the same batches, with the same SGD settings.
//  - f64, a small ResNet, 20 steps: the weights must agree to ~1e-9 (every kernel is f64 on both
//    sides, so only summation order differs).
//  - f32, ResNet-20 (the default model of `resin train`), RESIN_GPU_PARITY_STEPS steps (default
//    300) on a learnable synthetic task: f32 rounding differences grow over hundreds of steps, so
//    the first steps are compared tightly and the rest by the loss curve and held-out accuracy.
#include <cstdlib>

#include "gpu_util.h"
#include "resin/models/resnet.h"
#include "resin/models/zoo.h"
#include "resin/optim/optim.h"

namespace resin::test {
namespace {

const Device kGpu = Device::cuda(0);

struct Batch {
  Tensor x, y;
};

// 10 classes, each a fixed random 28x28 pattern; a sample is its class pattern plus noise.
std::vector<Batch> synthetic(int64_t batches, int64_t batch, uint64_t seed) {
  Generator g(seed);
  const Tensor protos = randn({10, 1, 28, 28}, {}, &g);
  Generator draw(seed + 1);
  std::vector<Batch> out;
  for (int64_t b = 0; b < batches; ++b) {
    const Tensor y = randint(0, 10, {batch}, {.dtype = DType::i64}, &draw);
    std::vector<Tensor> xs;
    for (int64_t i = 0; i < batch; ++i) xs.push_back(protos.narrow(0, y.data<int64_t>()[i], 1));
    out.push_back({add(concat(xs, 0), mul(randn({batch, 1, 28, 28}, {}, &draw), 0.8)), y});
  }
  return out;
}

// Trains `model` (already on `d`) and returns the loss of every step.
std::vector<double> train(nn::Module& model, const std::vector<Batch>& data, Device d, double lr) {
  optim::Sgd opt(optim::weight_decay_param_groups(model.named_parameters(), lr, 5e-4), {.momentum = 0.9, .nesterov = true});
  model.train();
  std::vector<double> losses;
  for (const Batch& b : data) {
    Tensor x = b.x.to(d);
    if (x.dtype() != model.parameters()[0].dtype()) x = x.to(model.parameters()[0].dtype());
    Tensor loss = cross_entropy(model.forward(x), b.y.to(d));
    losses.push_back(loss.item());
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  return losses;
}

double accuracy(nn::Module& model, const std::vector<Batch>& data, Device d) {
  NoGradGuard ng;
  model.eval();
  int64_t right = 0, total = 0;
  for (const Batch& b : data) {
    const auto pred = argmax(model.forward(b.x.to(d)), 1).to_vector();
    const auto y = b.y.to_vector();
    for (size_t i = 0; i < y.size(); ++i) right += pred[i] == y[i];
    total += static_cast<int64_t>(y.size());
  }
  return 100.0 * static_cast<double>(right) / static_cast<double>(total);
}

TEST(CudaTrainParity, TwentyStepsInF64MatchTheCpu) {
  RESIN_REQUIRE_GPU();
  const models::ResNetConfig cfg{.block = models::BlockKind::basic, .layers = {1, 1}, .widths = {8, 16},
                                 .stem = models::StemKind::cifar, .in_channels = 1, .num_classes = 10};
  manual_seed(7);
  models::ResNet cpu_net(cfg);
  cpu_net.to(DType::f64);
  manual_seed(7);
  models::ResNet gpu_net(cfg);
  gpu_net.to(DType::f64);
  gpu_net.to(kGpu);
  const auto data = synthetic(20, 6, 11);
  const auto l_cpu = train(cpu_net, data, Device::cpu(), 0.05), l_gpu = train(gpu_net, data, kGpu, 0.05);
  for (size_t i = 0; i < l_cpu.size(); ++i) EXPECT_NEAR(l_gpu[i], l_cpu[i], 1e-9 * (1 + std::abs(l_cpu[i]))) << "step " << i;
  const auto want = cpu_net.state_dict();
  for (auto& [name, t] : gpu_net.state_dict()) {
    const auto a = t.to_vector(), b = want.at(name).to_vector();
    for (size_t k = 0; k < a.size(); ++k)
      ASSERT_NEAR(a[k], b[k], 1e-8 * (1 + std::abs(b[k]))) << name << "[" << k << "]";
  }
  EXPECT_GT(std::abs(l_cpu.back() - l_cpu.front()), 1e-3);  // it trained
}

TEST(CudaTrainParity, Resnet20TrainsLikeTheCpu) {
  RESIN_REQUIRE_GPU();
  RESIN_SKIP_ON_EMULATED_GPU("hundreds of ResNet-20 steps (TwentyStepsInF64MatchTheCpu trains there)");
  const char* env = std::getenv("RESIN_GPU_PARITY_STEPS");
  const int64_t steps = env ? std::atoll(env) : 300;
  ASSERT_GE(steps, 60) << "RESIN_GPU_PARITY_STEPS must be at least 60";
  manual_seed(3);
  auto cpu_net = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  auto gpu_net = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  gpu_net->load_state_dict(cpu_net->state_dict());  // same initial weights
  gpu_net->to(kGpu);
  const auto data = synthetic(steps, 32, 21), held_out = synthetic(8, 64, 99);
  const auto l_cpu = train(*cpu_net, data, Device::cpu(), 0.05), l_gpu = train(*gpu_net, data, kGpu, 0.05);
  // Identical start: the first loss differs by f32 rounding only; the first steps stay close.
  EXPECT_NEAR(l_gpu[0], l_cpu[0], 1e-4 * l_cpu[0]);
  for (int i = 1; i < 10; ++i) EXPECT_NEAR(l_gpu[i], l_cpu[i], 2e-3 * (1 + l_cpu[i])) << "step " << i;
  // Then the curves: mean loss over the last 50 steps, and held-out accuracy.
  auto tail_mean = [](const std::vector<double>& v) {
    double s = 0;
    for (size_t i = v.size() - 50; i < v.size(); ++i) s += v[i];
    return s / 50;
  };
  const double t_cpu = tail_mean(l_cpu), t_gpu = tail_mean(l_gpu);
  EXPECT_LT(t_cpu, 0.5 * l_cpu[0]) << "the CPU run did not learn, so the comparison proves nothing";
  EXPECT_NEAR(t_gpu, t_cpu, 0.05 + 0.15 * t_cpu) << "tail loss, CPU " << t_cpu << " vs GPU " << t_gpu;
  const double a_cpu = accuracy(*cpu_net, held_out, Device::cpu()), a_gpu = accuracy(*gpu_net, held_out, kGpu);
  EXPECT_NEAR(a_gpu, a_cpu, 3.0) << "held-out accuracy";
  std::printf("[ resnet20 %lld steps ] loss %.4f -> %.4f (cpu) / %.4f (gpu); held-out top-1 %.2f%% / %.2f%%\n",
              static_cast<long long>(steps), l_cpu[0], t_cpu, t_gpu, a_cpu, a_gpu);
}

}  // namespace
}  // namespace resin::test
