// E11 (trained): norm-free deep residual MLPs, LAB.md §11 P2 — a He-initialised res-MLP(64, 100)
// without normalisation diverges, while ReZero, SkipInit and Fixup train to within 1.2× of the
// BatchNorm pre-activation baseline. The exact identities at init (P1) are in e11-init.
#include <cmath>

#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/models/lab_models.h"

namespace resin::lab {

namespace {

using blocks::Mix;
using blocks::UnitPlacement;

// init: 0 = the model's own (Fixup's scheme), 1 = He-normal weights, 2 = He-normal and zero biases.
Arm norm_free_arm(const std::string& name, models::ResMlpOptions o, int init, const TrainConfig& c) {
  return {name, [o, init] {
            auto m = models::make_res_mlp(o);
            if (init > 0) he_normal_init(*m, init == 2);
            return nn::ModulePtr(m);
          }, c};
}

void run_e11(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const bool q = ctx.quick;
  const int64_t subset = q ? 2000 : 10000, epochs = q ? 1 : 3, blocks = q ? 30 : 100;
  const LabTrainingData d = load_training_data(ctx, subset);
  const TrainConfig c{.epochs = epochs, .lr = 0.05};
  const models::ResMlpOptions pre{.width = 64, .blocks = blocks, .placement = UnitPlacement::full_preact, .norm = false};
  models::ResMlpOptions rezero = pre, skipinit = pre, fixup = pre, bn = pre;
  rezero.mix = Mix::learned_scale;
  skipinit.placement = UnitPlacement::original, skipinit.mix = Mix::learned_scale;
  fixup.placement = UnitPlacement::fixup, fixup.norm = true;
  bn.norm = true;
  r.protocol(str_cat("res-MLP(64, ", blocks, "), Fashion-MNIST subset ", subset, ", ", epochs, " epochs, SGD momentum 0.9, "
                     "batch 128, wd 1e-4 (weight matrices), lr 0.05 ×0.1 at 50%/75% for every arm. Standard: full "
                     "pre-activation units without normalisation, He-normal weights and zero biases. ReZero: the same "
                     "unit with y = x + α·F(x), α = 0 (He-normal weights). SkipInit: the original (post-ReLU) unit, no "
                     "normalisation, α = 0 at the end of the branch (He-normal weights). Fixup: the Fixup unit with its "
                     "own init (W1 He·L^(−1/2), W2 = 0, zero head, scalar biases and multiplier). Baseline: full "
                     "pre-activation with BatchNorm (He-normal weights). A run diverges when a minibatch loss is not "
                     "finite; 'train loss' is eval-mode cross-entropy on the first ", d.fit_x.size(0), " subset images."));
  std::vector<ArmRuns> arms;
  arms.push_back(train_arm(norm_free_arm("standard (He, no norm)", pre, 2, c), seeds, d));
  arms.push_back(train_arm(norm_free_arm("ReZero", rezero, 1, c), seeds, d));
  arms.push_back(train_arm(norm_free_arm("SkipInit", skipinit, 1, c), seeds, d));
  arms.push_back(train_arm(norm_free_arm("Fixup", fixup, 0, c), seeds, d));
  arms.push_back(train_arm(norm_free_arm("BN pre-act baseline", bn, 1, c), seeds, d));
  const double ln10 = std::log(10.0);
  bool std_failed = true;
  for (const TrainResult& t : arms[0].runs) std_failed &= t.diverged || !std::isfinite(t.fit_loss) || t.fit_loss >= ln10;
  const double base = mean_of(arms[4].fit_loss());
  bool trained = true;
  std::string text;
  for (size_t i = 1; i <= 3; ++i) {
    const double l = mean_of(arms[i].fit_loss());
    trained &= std::isfinite(l) && l <= 1.2 * base && !arms[i].any_diverged();
    text += str_cat("; ", arms[i].name, " ", mean_sd_text(arms[i].fit_loss()), " (", fmt(l / base), "× baseline)");
  }
  std::string std_text;
  for (const TrainResult& t : arms[0].runs)
    std_text += str_cat(std_text.empty() ? "" : ", ",
                        t.diverged ? str_cat("diverged at step ", t.diverged_at) : str_cat("loss ", fmt(t.fit_loss)));
  r.check("P2", std_failed && trained,
          str_cat("standard: ", std_text, " (need divergence or loss ≥ ln 10 = ", fmt(ln10), "); baseline ",
                  mean_sd_text(arms[4].fit_loss()), text, " (need ≤ 1.2× and no divergence)"));
  std::string te;
  for (const ArmRuns& a : arms) {
    r.metric("train_loss " + a.name, mean_of(a.fit_loss()));
    r.metric("test_error " + a.name, mean_of(a.test_error()));
    te += str_cat(te.empty() ? "" : "; ", a.name, " ", mean_sd_text(a.test_error()));
  }
  r.report("R1", "test error — " + te);
  add_run_table(r, arms);
  add_curve_plot(r, arms, "train_curves", "E11: running train loss per epoch");
}

}  // namespace

Experiment make_e11_normfree() {
  return {.name = "e11-normfree",
          .title = "Norm-free deep residual nets: He init diverges, ReZero/SkipInit/Fixup train",
          .claim = "Without normalisation a deep He-initialised residual network's signal explodes and training fails; "
                   "starting every residual branch at zero (ReZero, SkipInit, Fixup) makes it trainable without "
                   "normalisation, close to a normalised network.",
          .source = "Bachlechner et al. 2020 (arXiv 2003.04887); De & Smith 2020 (arXiv 2002.10444); Zhang, Dauphin, Ma "
                    "2019 (arXiv 1901.09321)",
          .paper = {{"ReZero: x_{i+1} = x_i + α_i F(x_i), α_i = 0 at init, no LayerNorm", Tag::second_hand},
                    {"SkipInit: learnable scalar (0 at init) at the end of each branch, normalisation removed", Tag::memory},
                    {"Fixup: zero-init last branch layer and classifier, scale others by L^(−1/(2m−2)), scalar "
                     "multipliers and biases; trains 10,000-layer nets without normalisation",
                     Tag::second_hand}},
          .criteria = {{"P2", "training B = 100: standard init diverges (NaN/inf) or ends with train loss ≥ ln 10, while "
                              "ReZero, SkipInit and Fixup reach mean train loss ≤ 1.2 × the BN pre-act baseline's"},
                       {"R1", "test errors", true}},
          .criteria_note = "LAB.md §11, fixed before the seeded runs; lr 0.05 (E1's frozen choice) for every arm, no "
                           "per-method tuning. P1 (exact, at init) is in e11-init. Quick mode (30 blocks, subset 2000, "
                           "1 epoch, 1 seed) is a smoke run.",
          .default_seeds = 3,
          .quick_seeds = 1,
          .trains = true,
          .run = run_e11};
}

}  // namespace resin::lab
