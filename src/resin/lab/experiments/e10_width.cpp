// E10a (width vs depth at equal parameters, Zagoruyko & Komodakis 2016) and E10b (cardinality at
// preserved complexity, Xie et al. 2017), LAB.md §10(b), MLP analogues.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/lab/lab_nets.h"
#include "resin/lab/stack.h"
#include "resin/models/lab_models.h"

namespace resin::lab {

namespace {

using blocks::UnitPlacement;

// Mean cross-entropy of the stack on (x, y), eval mode, with the given block modes.
double stack_loss(const BlockStack& s, const Tensor& x, const Tensor& y, const std::vector<BlockMode>& modes = {}) {
  NoGradGuard ng;
  double total = 0;
  for (int64_t b = 0; b < x.size(0); b += 1000) {
    const int64_t len = std::min<int64_t>(1000, x.size(0) - b);
    total += cross_entropy(run_stack(s, x.narrow(0, b, len), {.modes = modes}),
                           y.narrow(0, b, len).to(s.device()), {.reduction = Reduction::sum})
                 .item();
  }
  return total / static_cast<double>(x.size(0));
}

// Median wall-clock seconds of `steps` SGD steps (forward + backward + update) of each model, measured in
// alternation (rounds) so that a shared machine's load hits both alike.
std::vector<double> interleaved_step_seconds(const std::vector<nn::ModulePtr>& models, const LabTrainingData& d,
                                             int64_t steps, int rounds) {
  std::vector<std::vector<double>> t(models.size());
  for (int round = 0; round <= rounds; ++round)
    for (size_t i = 0; i < models.size(); ++i) {
      LabTrainingData slice = d;
      slice.train_x = d.train_x.narrow(0, 0, 128 * steps).contiguous();
      slice.train_y = d.train_y.narrow(0, 0, 128 * steps).contiguous();
      slice.fit_x = slice.fit_y = slice.test_x = slice.test_y = Tensor();
      const auto t0 = std::chrono::steady_clock::now();
      train_classifier(*models[i], slice, {.epochs = 1, .lr = 0.01, .measure = false});
      if (round > 0)  // round 0 warms the primitive caches
        t[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(steps));
    }
  std::vector<double> med;
  for (const auto& v : t) med.push_back(median_of(v));
  return med;
}

// ---- E10a
void run_e10a(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const bool q = ctx.quick;
  const int64_t subset = q ? 4000 : 30000, epochs = q ? 2 : 10;
  const LabTrainingData d = load_training_data(ctx, subset);
  const TrainConfig c{.epochs = epochs, .lr = 0.05};
  auto arm = [&](int64_t width, int64_t blocks) {
    return he_arm(str_cat(blocks > 5 ? "thin-deep" : "wide-shallow", " res-MLP(", width, ", ", blocks, ")"), [=] {
      return models::make_res_mlp({.width = width, .blocks = blocks, .placement = UnitPlacement::full_preact});
    }, c);
  };
  r.protocol(str_cat("Pre-activation res-MLP(48, 40) (thin-deep) vs res-MLP(128, 5) (wide-shallow), Fashion-MNIST subset ",
                     subset, ", ", epochs, " epochs, SGD momentum 0.9, batch 128, wd 1e-4, lr 0.05 ×0.1 at 50%/75%, "
                     "He-normal init. Speed: median over 5 alternating rounds of 20 training steps each (wall clock, the "
                     "same threads; seconds per epoch from training are in the runs table). Lesion diagnostic on seed ",
                     seeds[0], ": train loss (eval mode) with one block deleted."));
  std::vector<ArmRuns> arms;
  std::vector<double> quiet_fraction;
  for (auto [w, b] : {std::pair<int64_t, int64_t>{48, 40}, {128, 5}})
    arms.push_back(train_arm(arm(w, b), seeds, d, [&](size_t si, nn::Module& m, const TrainResult&) {
      if (si != 0) return;
      m.eval();
      BlockStack s = block_stack(static_cast<models::LabNet&>(m));
      const double intact = stack_loss(s, d.fit_x, d.fit_y);
      int64_t quiet = 0;
      for (size_t i = 0; i < s.size(); ++i)
        quiet += std::abs(stack_loss(s, d.fit_x, d.fit_y, delete_blocks(s.size(), {i})) - intact) < 0.01 * intact;
      quiet_fraction.push_back(static_cast<double>(quiet) / static_cast<double>(s.size()));
    }));
  const double acc_thin = 1 - mean_of(arms[0].test_error()), acc_wide = 1 - mean_of(arms[1].test_error());
  r.metric("test_acc thin", acc_thin);
  r.metric("test_acc wide", acc_wide);
  r.check("P1", acc_wide >= acc_thin - 0.003,
          str_cat("test accuracy wide ", fmt(acc_wide), " vs thin ", fmt(acc_thin), " (need wide ≥ thin − 0.3 pp); params ",
                  arms[1].params, " vs ", arms[0].params));
  manual_seed(seeds[0]);
  std::vector<nn::ModulePtr> timed = {arm(48, 40).make(), arm(128, 5).make()};
  const auto sec = interleaved_step_seconds(timed, d, 20, 5);
  r.metric("step_seconds thin", sec[0]);
  r.metric("step_seconds wide", sec[1]);
  r.metric("speedup wide over thin", sec[0] / sec[1]);
  r.check("P2", sec[0] / sec[1] >= 1.5,
          str_cat("seconds per step thin ", fmt(sec[0]), ", wide ", fmt(sec[1]), ": wide is ", fmt(sec[0] / sec[1]),
                  "× faster (need ≥ 1.5); from training: ", fmt(mean_of(arms[0].get(&TrainResult::seconds_per_epoch))),
                  " vs ", fmt(mean_of(arms[1].get(&TrainResult::seconds_per_epoch))), " s/epoch"));
  r.report("R1", str_cat("blocks whose single lesion changes train loss by < 1%: thin-deep ", fmt(100 * quiet_fraction[0]),
                         "%, wide-shallow ", fmt(100 * quiet_fraction[1]), "% (diminishing feature reuse expects more for "
                                                                          "thin-deep)"));
  add_run_table(r, arms);
  add_curve_plot(r, arms, "train_curves", "E10a: running train loss per epoch");
}

// ---- E10b
void run_e10b(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const bool q = ctx.quick;
  const int64_t subset = q ? 3000 : 20000, epochs = q ? 2 : 10;
  const LabTrainingData d = load_training_data(ctx, subset);
  const TrainConfig c{.epochs = epochs, .lr = 0.05};
  const std::vector<std::pair<int64_t, int64_t>> settings =
      q ? std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {8, 10}} : std::vector<std::pair<int64_t, int64_t>>{{1, 64}, {2, 35}, {4, 19}, {8, 10}};
  r.protocol(str_cat("ResNeXt-MLP (lab/lab_nets.h): width 128, 8 blocks y = relu(x + BN(Σ_{i=1..C} T_i(x))), T_i = "
                     "128→d→d→128 with BN-ReLU, (C, d) ∈ {", [&] {
                       std::string s;
                       for (auto [cc, dd] : settings) s += str_cat(s.empty() ? "" : ", ", "(", cc, ", ", dd, ")");
                       return s;
                     }(),
                     "} at ≈ equal parameters; Fashion-MNIST subset ", subset, ", ", epochs, " epochs, SGD momentum "
                     "0.9, batch 128, wd 1e-4, lr 0.05 ×0.1 at 50%/75%, He-normal init."));
  std::vector<ArmRuns> arms;
  for (auto [cc, dd] : settings)
    arms.push_back(train_arm(he_arm(str_cat("C=", cc, " d=", dd), [cc = cc, dd = dd] {
      return make_resnext_mlp({.cardinality = cc, .group_width = dd});
    }, c), seeds, d));
  for (const ArmRuns& a : arms) {
    r.metric("train_loss " + a.name, mean_of(a.fit_loss()));
    r.metric("test_error " + a.name, mean_of(a.test_error()));
  }
  const ArmRuns& c1 = arms.front();
  const ArmRuns& c8 = arms.back();
  r.check("P2", mean_of(c8.fit_loss()) <= mean_of(c1.fit_loss()),
          str_cat("train loss C=8 ", mean_sd_text(c8.fit_loss()), " vs C=1 ", mean_sd_text(c1.fit_loss())));
  std::string te;
  for (const ArmRuns& a : arms) te += str_cat(te.empty() ? "" : "; ", a.name, " ", mean_sd_text(a.test_error()));
  r.report("R1", "test error — " + te);
  add_run_table(r, arms);
  Plot p{.title = "Train loss by cardinality (mean over seeds)", .xlabel = "cardinality C", .ylabel = "train loss",
         .log_x = true};
  Series s{.name = "ResNeXt-MLP"};
  for (size_t i = 0; i < arms.size(); ++i)
    s.x.push_back(static_cast<double>(settings[i].first)), s.y.push_back(mean_of(arms[i].fit_loss()));
  p.series = {s};
  r.plot("train_loss_vs_cardinality", "Train loss at preserved complexity vs cardinality", p);
}

}  // namespace

Experiment make_e10a_width() {
  return {.name = "e10a-width",
          .title = "Width vs depth at equal parameters: wide-shallow matches thin-deep and runs faster",
          .claim = "A wide, shallow residual network matches (or beats) a thin, very deep one of similar parameter "
                   "count and trains several times faster; in thin-deep nets many blocks contribute little "
                   "('diminishing feature reuse').",
          .source = "Zagoruyko & Komodakis 2016, 'Wide Residual Networks', arXiv 1605.07146",
          .paper = {{"C10 test error: pre-act ResNet-1001 (10.2M) 4.92; WRN-40-4 (8.9M) 4.53; WRN-16-8 (11.0M) 4.27",
                     Tag::second_hand},
                    {"WRN-40-4 ≈ ResNet-1001 accuracy and 8× faster", Tag::second_hand}},
          .criteria = {{"P1", "wide-shallow mean test accuracy ≥ thin-deep − 0.3 pp"},
                       {"P2", "wide-shallow ≥ 1.5× faster per training step (wall clock, same machine, interleaved)"},
                       {"R1", "fraction of blocks whose single lesion changes train loss < 1%", true}},
          .criteria_note = "LAB.md §10(b), fixed before the seeded runs. P2 is timed in alternating rounds because the "
                           "machine is shared. Quick mode (subset 4000, 2 epochs, 1 seed) is a smoke run.",
          .default_seeds = 3,
          .quick_seeds = 1,
          .trains = true,
          .run = run_e10a};
}

Experiment make_e10b_cardinality() {
  return {.name = "e10b-cardinality",
          .title = "Cardinality at preserved complexity: more paths, lower training loss?",
          .claim = "At preserved parameters and FLOPs, increasing cardinality (the number of aggregated "
                   "transformations) improves accuracy, with lower training error (not regularisation).",
          .source = "Xie, Girshick, Dollár, Tu, He 2017, 'Aggregated Residual Transformations', arXiv 1611.05431",
          .paper = {{"ImageNet top-1 error at preserved complexity: 1×64d 23.9; 2×40d 23.0; 4×24d 22.6; 8×14d 22.3; "
                     "32×4d 22.2",
                     Tag::paper},
                    {"32×4d also has much lower training error", Tag::paper}},
          .criteria = {{"P2", "mean train loss C=8 ≤ C=1 at the fixed budget"}, {"R1", "test errors", true}},
          .criteria_note = "LAB.md §10(b); P1 (exact counters) is in e10b-resnext-counts. Quick mode ((1, 64) and "
                           "(8, 10) only, subset 3000, 2 epochs, 1 seed) is a smoke run.",
          .default_seeds = 3,
          .quick_seeds = 1,
          .trains = true,
          .run = run_e10b};
}

}  // namespace resin::lab
