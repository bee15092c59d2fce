// resin's side of the GPU benchmark (tests/gpu/run.sh runs it next to bench_torch.py, which does
// the same in PyTorch, and tabulates both). One JSON object per line on stdout:
//   {"framework": "resin", "bench": "resnet50_train", "batch": 256, "dtype": "f32", "images_per_s": ...}
//   {"framework": "resin", "bench": "fmnist_time_to_target", "target": 95, "reached": true, "seconds": ...}
// resnet50: training steps (forward, backward, SGD) on random 224x224 channels-last images, timed
// after warm-up with the device synchronised (--dtype bf16|f16: under autocast; bf16 needs no loss
// scaling and f16 on random data does not overflow at this scale, so none is applied). fmnist: ResNet-20 with
// the `resin train` recipe (augmentation, SGD Nesterov, warm-up + cosine), evaluated after every epoch;
// reports the wall time from the first step to the first evaluation at or above the target.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "resin/cli/args.h"
#include "resin/core/cuda.h"
#include "resin/models/zoo.h"
#include "resin/optim/optim.h"
#include "resin/resin.h"
#include "resin/train/data_setup.h"
#include "resin/train/precision.h"

using namespace resin;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void resnet50(int64_t batch, int64_t steps, int64_t size, Device dev, DType compute) {
  manual_seed(0);
  auto model = models::create_model("resnet50", {.in_channels = 3, .num_classes = 1000});
  model->to(dev);
  optim::Sgd opt(model->parameters(), 0.1, 1e-4, {.momentum = 0.9});
  const Tensor x = randn({batch, 3, size, size}).contiguous(MemoryFormat::channels_last).to(dev);
  const Tensor y = randint(0, 1000, {batch}, {.dtype = DType::i64}).to(dev);
  auto step = [&] {
    Tensor loss;
    {
      AutocastGuard autocast(compute);  // f32: off; bf16/f16: convolutions and matmuls in it
      loss = cross_entropy(model->forward(x), y);
    }
    loss.backward();
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 3; ++i) step();  // algorithm choice, allocator warm-up
  cuda::synchronize();
  cuda::reset_peak_memory(dev.index);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  cuda::synchronize();
  const double s = since(t0);
  const char* tf32 = std::getenv("RESIN_CUDA_TF32");  // read by the backend: cuDNN may use TF32 tensor cores
  const bool with_tf32 = tf32 && std::string(tf32) == "1";
  std::printf(
      "{\"framework\": \"resin\", \"bench\": \"resnet50_train\", \"batch\": %lld, \"dtype\": \"%s\", "
      "\"layout\": \"channels_last\", \"image_size\": %lld, \"steps\": %lld, \"images_per_s\": %.1f, "
      "\"peak_gib\": %.2f}\n",
      static_cast<long long>(batch),
      compute != DType::f32 ? str_cat(dtype_name(compute), " autocast").c_str()
      : with_tf32           ? "f32 (TF32 convs)"
                            : "f32",
      static_cast<long long>(size), static_cast<long long>(steps), static_cast<double>(batch * steps) / s,
      static_cast<double>(cuda::memory_stats(dev.index).peak_allocated_bytes) / (1 << 30));
  std::fflush(stdout);
}

// subset > 0: only the first `subset` training and test images, in batches of `batch` (a smoke run).
void fmnist(const std::string& dir, double target, int64_t epochs, double max_seconds, int64_t subset,
            int64_t batch, Device dev) {
  train::DataSpec d = train::load_data("fashion-mnist", dir);
  if (subset > 0) {
    d.train = data::subset_first(d.train, subset);
    d.test = data::subset_first(d.test, subset);
  }
  data::DataLoader train_loader(d.train,
                                {.batch_size = batch, .shuffle = true, .drop_last = true, .num_workers = 4},
                                train::train_transform(d, true));
  data::DataLoader test_loader(d.test, {.batch_size = 1000, .num_workers = 4}, train::test_transform(d));
  manual_seed(0);
  auto model = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  model->to(dev);
  const int64_t ipe = train_loader.num_batches();
  optim::Sgd opt(optim::weight_decay_param_groups(model->named_parameters(), 0.1, 5e-4), {.momentum = 0.9, .nesterov = true});
  const int64_t warmup = ipe / 5;
  optim::LrScheduler sched(opt, optim::warmup_then(warmup, 0.1, std::make_shared<optim::CosineAnnealingLr>(epochs * ipe - warmup)));
  const auto t0 = Clock::now();
  double best = 0, reached_at = -1;
  int64_t epoch = 0;
  for (; epoch < epochs && reached_at < 0 && since(t0) < max_seconds; ++epoch) {
    model->train();
    train_loader.start_epoch(epoch);
    while (auto b = train_loader.next()) {
      Tensor loss = cross_entropy(model->forward(b->images.to(dev)), b->labels.to(dev));
      loss.backward();
      opt.step();
      opt.zero_grad();
      sched.step();
    }
    NoGradGuard ng;
    model->eval();
    test_loader.start_epoch(0);
    int64_t right = 0, total = 0;
    while (auto b = test_loader.next()) {
      const auto pred = argmax(model->forward(b->images.to(dev)), 1).to_vector();
      const auto y = b->labels.to_vector();
      for (size_t i = 0; i < y.size(); ++i) right += pred[i] == y[i];
      total += static_cast<int64_t>(y.size());
    }
    const double acc = 100.0 * static_cast<double>(right) / static_cast<double>(total);
    best = std::max(best, acc);
    std::fprintf(stderr, "resin fmnist epoch %lld: %.2f%% at %.1fs\n", static_cast<long long>(epoch + 1), acc, since(t0));
    if (acc >= target) reached_at = since(t0);
  }
  std::printf("{\"framework\": \"resin\", \"bench\": \"fmnist_time_to_target\", \"model\": \"resnet20\", \"target\": %.2f, "
              "\"reached\": %s, \"seconds\": %.1f, \"epochs\": %lld, \"best_top1\": %.2f}\n",
              target, reached_at >= 0 ? "true" : "false", reached_at >= 0 ? reached_at : since(t0),
              static_cast<long long>(epoch), best);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    cli::Args args("gpu_bench", "resin's side of the GPU benchmark (see tests/gpu/run.sh).");
    args.option("batch", "256", "ResNet-50 batch size", "B")
        .option("steps", "10", "timed ResNet-50 steps", "N")
        .option("fmnist-dir", "", "Fashion-MNIST directory (empty: skip that benchmark)", "DIR")
        .option("target", "95", "Fashion-MNIST test top-1 to reach, %", "P")
        .option("epochs", "15", "at most this many Fashion-MNIST epochs (the cosine schedule's length)", "E")
        .option("max-seconds", "150", "stop the Fashion-MNIST run after this long", "S")
        .option("dtype", "f32", "ResNet-50 compute type: f32 | bf16 | f16 (autocast)", "TYPE")
        .option("image-size", "224", "ResNet-50 input size (smaller: a smoke run)", "S")
        .option("subset", "0",
                "Fashion-MNIST: only the first N training and test images (0: all; a smoke run)", "N")
        .option("fmnist-batch", "128", "Fashion-MNIST batch size (the recipe's 128; smaller: a smoke run)",
                "B")
        .flag("no-resnet50", "skip the ResNet-50 benchmark");
    if (!args.parse(std::vector<std::string>(argv + 1, argv + argc))) return 0;
    const Device dev = Device::cuda(0);
    cuda::check_device(dev);
    if (!args.get_flag("no-resnet50"))
      resnet50(args.get_int("batch", 1), args.get_int("steps", 1), args.get_int("image-size", 32, 1024), dev,
               train::autocast_type(args.get("dtype"), "cuda"));
    if (!args.get("fmnist-dir").empty())
      fmnist(args.get("fmnist-dir"), args.get_double("target", 0, 100), args.get_int("epochs", 1),
             args.get_double("max-seconds", 1), args.get_int("subset", 0), args.get_int("fmnist-batch", 1),
             dev);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
