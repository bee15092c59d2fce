// The trained experiments' one training helper: in-process, deterministic given the seed, with the
// measurements LAB.md §0 prescribes. Data live in memory as tensors (Fashion-MNIST is 47 MB); the
// helper batches them itself, so nothing here touches the CLI trainer (train/).
//
//   LabTrainingData d = load_training_data(ctx, 30000);        // subset + fixed 10k fit set + test set
//   manual_seed(seed);                                          // the init seed
//   auto net = models::make_mlp({.width = 64, .depth = 20});
//   TrainResult t = train_classifier(*net, d, {.epochs = 10, .lr = 0.05, .seed = seed});
//   t.fit_loss, t.test_error, t.diverged ...
//
// Defaults are LAB.md §0's: SGD momentum 0.9, weight decay 1e-4 on weight matrices/kernels only (not
// on BN/LN parameters or biases: optim::weight_decay_param_groups), batch 128, lr × 0.1 at 50% and
// 75% of the steps. AdamW (decoupled decay on the same groups) where a protocol says so.
//
// Determinism: the batch order of epoch e is a Fisher–Yates permutation from
// Generator(seed·1000003 + e); the model's initialisation and any training-time randomness (dropout,
// masks) come from the caller's manual_seed and the default generator, so two runs with the same seed
// (and thread count) match.
//
// Divergence: a non-finite minibatch loss stops the run; the result says so (diverged, the step) and
// the final numbers are measured anyway (usually NaN/inf), never thrown.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "resin/core/rng.h"
#include "resin/lab/experiment.h"
#include "resin/nn/module.h"

namespace resin::lab {

// The seed of the class-stratified permutation that defines every "subset N" (fixed for all runs).
inline constexpr uint64_t kSubsetSeed = 20261127;

// Indices 0..N−1 of `labels` (i64 [N]) in a seeded class-stratified order: each class's indices are
// shuffled, then dealt round-robin over the classes, so every prefix holds the classes in (almost)
// equal numbers.
std::vector<int64_t> stratified_order(const Tensor& labels, uint64_t seed);

// Rows `idx[begin .. begin+len)` of a contiguous tensor (first dimension), as a new tensor.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& idx, size_t begin, size_t len);

// The tensors stay in host memory (the lab's subsets are small); `device` is where models train on
// them: train_classifier moves the model there and each batch as it goes, and the analyses move
// their inputs to the model's device (stack.h's run_stem, evaluate).
struct LabTrainingData {
  Device device = Device::cpu();
  Tensor train_x{}, train_y{};  // subset N: f32 [N, 1, 28, 28] (or [N, 1, 14, 14]), i64 [N]
  Tensor fit_x{}, fit_y{};      // the first min(N, fit_n) of the subset: where "train loss" is measured
  Tensor test_x{}, test_y{};    // the first test_n of the test set (all 10k by default)
};
// Fashion-MNIST per LAB §0 (normalised; downsample: 2×2 mean pooling to 14×14). test_n = 0: the whole
// test set (10k), or its first 2000 images in quick mode (ctx.quick). device = ctx.device.
LabTrainingData load_training_data(const Context& ctx, int64_t train_n, int64_t fit_n = 10000, int64_t test_n = 0,
                                   bool downsample = false);

enum class Optimiser { sgd, adamw };
enum class Schedule {
  step,      // × 0.1 at 50% and 75% of the steps (He et al.)
  constant,
  exp_epoch,  // × gamma after every epoch (Srivastava et al.'s exponential decay)
  inv_sqrt,  // × sqrt(decay_start / max(step + 1, decay_start)) (Xiong et al.; warm-up below)
};

// loss(model, x, y) for a minibatch (training) — the default is cross_entropy(model(x), y).
using LossFn = std::function<Tensor(nn::Module&, const Tensor&, const Tensor&)>;

struct TrainConfig {
  int64_t epochs = 10, batch = 128;
  int64_t max_steps = 0;  // > 0: stop after this many steps (E6b counts steps, not epochs)
  Optimiser optimiser = Optimiser::sgd;
  double lr = 0.1, momentum = 0.9, weight_decay = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;  // AdamW
  Schedule schedule = Schedule::step;
  double gamma = 0.95;         // exp_epoch
  int64_t decay_start = 50;    // inv_sqrt
  // Warm-up over the first warmup_steps steps: linear from lr/warmup_steps to lr (linear_warmup),
  // or constant at lr·warmup_factor (He et al.'s "0.01 for 400 iterations" is factor 0.1).
  int64_t warmup_steps = 0;
  bool linear_warmup = true;
  double warmup_factor = 0.1;
  uint64_t seed = 0;           // batch order
  bool eval_each_epoch = false;  // also measure fit loss and test error after every epoch (curves)
  LossFn loss = {};
  // Called after every optimiser step (1-based step count), e.g. to measure at 10% of training.
  std::function<void(int64_t step, nn::Module&)> on_step = {};
  bool measure = true;  // false: skip the final evaluation (timing runs)
};

struct EpochPoint {
  int64_t epoch = 0;      // 1-based
  double running_loss = 0;  // mean minibatch loss over the epoch (training mode)
  double fit_loss = NAN, test_error = NAN;  // eval mode; only with eval_each_epoch
  double seconds = 0;     // training time of this epoch (evaluations excluded)
};

struct TrainResult {
  std::vector<EpochPoint> curve;
  std::vector<double> step_loss;  // minibatch loss after each step
  double fit_loss = NAN, fit_error = NAN;    // eval mode on the fit subset, after training
  double test_loss = NAN, test_error = NAN;  // eval mode on the test set
  double seconds = 0;                        // training only
  double seconds_per_epoch = 0;
  int64_t steps = 0;
  bool diverged = false;
  int64_t diverged_at = 0;  // the step whose loss was not finite
};

// Moves `model` to d.device, trains it on d.train_* and measures it (cross-entropy classifiers; with a
// custom loss or measure = false the final numbers stay NaN). The custom loss gets batches on d.device.
TrainResult train_classifier(nn::Module& model, const LabTrainingData& d, const TrainConfig& c);

struct EvalResult {
  double loss = NAN, error = NAN;
};
// Mean cross-entropy and top-1 error in eval mode, without gradients; the model's mode is restored.
// Batches of x are moved to the model's device, and its logits back to the host for the loss.
EvalResult evaluate(nn::Module& model, const Tensor& x, const Tensor& y, int64_t batch = 1000);

// Learning-rate factor of step `step` (0-based) for the config's schedule and warm-up.
double lr_factor(const TrainConfig& c, int64_t step, int64_t steps_per_epoch, int64_t total_steps);

// He-normal (fan-in, ReLU gain) for every Linear/Conv2d weight under `m` (LAB §0's init); their
// biases are zeroed only with zero_bias (gates keep their b_g); normalisation parameters are left alone.
void he_normal_init(nn::Module& m, bool zero_bias = false);

// ---- arms: one configuration trained with every seed
// Seed s: manual_seed(s) then make() (the init), config.seed = s (the batch order) — the same data
// order and init seed across arms, so arms can be compared seed by seed ("paired").
struct Arm {
  std::string name;
  std::function<nn::ModulePtr()> make;
  TrainConfig config = {};
};
struct ArmRuns {
  std::string name{};
  int64_t params = 0;
  std::vector<uint64_t> seeds{};
  std::vector<TrainResult> runs{};
  std::vector<double> get(double TrainResult::*field) const;  // one value per seed
  // The train loss per seed, +inf for a diverged run (or a non-finite loss): infinitely bad, so
  // comparisons and means treat it as the worst outcome rather than as NaN.
  std::vector<double> fit_loss() const;
  std::vector<double> test_error() const { return get(&TrainResult::test_error); }
  bool any_diverged() const;
};
// An arm whose model is build() with He-normal weights (he_normal_init).
Arm he_arm(std::string name, std::function<nn::ModulePtr()> build, TrainConfig config);
// Trains the arm once per seed; `after` (optional) sees each trained model (lesions, probes).
ArmRuns train_arm(const Arm& a, const std::vector<uint64_t>& seeds, const LabTrainingData& d,
                  const std::function<void(size_t seed_index, nn::Module&, const TrainResult&)>& after = {});
// mean(a) > mean(b) and a_i > b_i for every paired seed (LAB §0's "A > B").
bool paired_greater(const std::vector<double>& a, const std::vector<double>& b);
// Elementwise a_i / b_i.
std::vector<double> ratios(const std::vector<double>& a, const std::vector<double>& b);
// The standard table of every run (arm, seed, params, fit loss/error, test loss/error, s/epoch,
// diverged) and a plot of the per-epoch curves of seed 0 (fit loss when measured, else running loss).
void add_run_table(Results& r, const std::vector<ArmRuns>& arms, const std::string& name = "runs");
void add_curve_plot(Results& r, const std::vector<ArmRuns>& arms, const std::string& name, const std::string& title,
                    bool log_y = true);
// Progress line on stderr ("<experiment>: <arm> seed s: fit loss ..., test error ..., t s").
void progress(const std::string& experiment, const std::string& what);

// ---- report helpers shared by the trained experiments
// "mean ± sd (a, b, c)".
std::string mean_sd_text(const std::vector<double>& v);
// A plot series of the per-epoch fit loss (or running loss when no evaluation ran).
Series curve_series(const std::string& name, const TrainResult& t, bool test_error = false);
// The minibatch losses as a line, a `window`-step moving average sampled every `stride` steps.
Series step_loss_series(const std::string& name, const std::vector<double>& step_loss, size_t window = 10,
                        size_t stride = 5);

}  // namespace resin::lab
