// E1: the degradation problem (He et al. 2015), LAB.md §1(b), MLP analogue, with the calibration's
// relative form of P2. Plain MLP(64, L) against the same stack with an identity shortcut around every
// pair of hidden layers and ReLU after the addition (the original unit), L ∈ {20, 56}.
#include <cmath>

#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/models/lab_models.h"

namespace resin::lab {

namespace {

using blocks::UnitPlacement;

constexpr int64_t kWidth = 64;

struct Scale {
  int64_t subset, epochs;
  std::vector<int64_t> sweep;  // extra plain depths (seed 0) for P3
  bool pilot, preact;
};

Arm plain_arm(int64_t depth, const TrainConfig& c) {
  return he_arm(str_cat("plain-", depth), [depth] { return models::make_mlp({.width = kWidth, .depth = depth}); }, c);
}

// L weight layers = stem + 2·B + head, so B = (L − 2)/2 units.
Arm res_arm(int64_t depth, UnitPlacement p, const TrainConfig& c) {
  return he_arm(str_cat(p == UnitPlacement::original ? "res-" : "preact-res-", depth), [depth, p] {
    return models::make_res_mlp({.width = kWidth, .blocks = (depth - 2) / 2, .placement = p});
  }, c);
}

// The CNN version's cost on this machine: median seconds of a training step (batch 128, 28×28) of the
// CIFAR topology (rescnn, option A) for n = 3 and 9, projected to LAB's E1-CNN protocol.
std::string cnn_cost(const LabTrainingData& d, uint64_t seed) {
  std::string out;
  for (int64_t n : {3, 9}) {
    manual_seed(seed);
    auto m = models::make_res_cnn({.n = n});
    std::vector<double> t;
    for (int i = 0; i < 4; ++i) {
      LabTrainingData one = d;
      one.train_x = d.train_x.narrow(0, 128 * i, 128).contiguous(), one.train_y = d.train_y.narrow(0, 128 * i, 128).contiguous();
      const TrainResult tr = train_classifier(*m, one, {.epochs = 1, .lr = 0.01, .measure = false});
      if (i > 0) t.push_back(tr.seconds);  // the first step builds the primitives
    }
    const double step = median_of(t);
    out += str_cat(out.empty() ? "" : "; ", "ResNet-", 6 * n + 2, " (", m->parameter_count(), " params): ", fmt(step),
                   " s per step of 128 → 20 epochs of 60k = ", fmt(step * 20 * 469 / 3600), " h per model per seed");
  }
  return "CNN version (LAB E1-CNN) not run: measured on this machine (" + d.device.str() + "), " + out +
         " — 8 models × 3 seeds do not fit this run's budget (LAB plans a GPU run).";
}

void run_e1(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const Scale s = ctx.quick ? Scale{4000, 2, {}, false, false} : Scale{30000, 10, {32, 44, 110}, true, true};
  const LabTrainingData d = load_training_data(ctx, s.subset);
  TrainConfig c{.epochs = s.epochs, .lr = 0.05, .eval_each_epoch = !ctx.quick};

  // Pilot (LAB §1: one sweep on plain-20 only, then frozen): a seed outside the run's seeds.
  if (s.pilot) {
    Table& pt = r.table("pilot_lr", "Pilot: plain-20, seed 1, lr sweep (the lowest train loss is kept for all models)",
                        {"lr", "fit_loss", "test_error"});
    double best = INFINITY;
    for (double lr : {0.02, 0.05, 0.1}) {
      TrainConfig pc = c;
      pc.lr = lr, pc.eval_each_epoch = false;
      const ArmRuns a = train_arm(plain_arm(20, pc), {1}, d);
      pt.add({fmt(lr), fmt(a.runs[0].fit_loss), fmt(a.runs[0].test_error)});
      if (a.runs[0].fit_loss < best) best = a.runs[0].fit_loss, c.lr = lr;
    }
  }
  r.protocol(str_cat("Fashion-MNIST, subset ", s.subset, " (seeded class-stratified), ", s.epochs,
                     " epochs, SGD momentum 0.9, batch 128, wd 1e-4 (weights only), lr ", fmt(c.lr),
                     " ×0.1 at 50%/75% of the steps", s.pilot ? " (lr from the pilot sweep on plain-20, seed 1)" : "",
                     ". plain-L = MLP(64, L) with Linear→BN→ReLU hidden layers; res-L = the same weights with an "
                     "identity shortcut around every pair of hidden layers and ReLU after the addition "
                     "(res-MLP(64, (L−2)/2), original unit). He-normal init. Train loss = cross-entropy in eval "
                     "mode on the first ", d.fit_x.size(0), " images of the subset; test error on the ",
                     d.test_x.size(0), " test images."));
  std::vector<ArmRuns> arms;
  for (int64_t L : {20, 56}) arms.push_back(train_arm(plain_arm(L, c), seeds, d));
  for (int64_t L : {20, 56}) arms.push_back(train_arm(res_arm(L, UnitPlacement::original, c), seeds, d));
  if (s.preact) arms.push_back(train_arm(res_arm(56, UnitPlacement::full_preact, c), seeds, d));
  const auto& p20 = arms[0];
  const auto& p56 = arms[1];
  const auto& r20 = arms[2];
  const auto& r56 = arms[3];
  for (const ArmRuns& a : arms) {
    r.metric("train_loss " + a.name, mean_of(a.fit_loss()));
    r.metric("test_error " + a.name, mean_of(a.test_error()));
  }

  const double lp20 = mean_of(p20.fit_loss()), lp56 = mean_of(p56.fit_loss());
  const double lr20 = mean_of(r20.fit_loss()), lr56 = mean_of(r56.fit_loss());
  const bool p1 = lp56 > 1.2 * lp20 && paired_greater(p56.fit_loss(), p20.fit_loss()) &&
                  paired_greater(p56.get(&TrainResult::fit_error), p20.get(&TrainResult::fit_error));
  r.check("P1", p1, str_cat("train loss plain-56 ", mean_sd_text(p56.fit_loss()), " vs plain-20 ",
                            mean_sd_text(p20.fit_loss()), " (ratio ", fmt(lp56 / lp20), ", need > 1.2); train error ",
                            mean_sd_text(p56.get(&TrainResult::fit_error)), " vs ",
                            mean_sd_text(p20.get(&TrainResult::fit_error))));
  r.check("P2", lr56 <= 1.05 * lr20 && lr56 < 0.8 * lp56,
          str_cat("res-56/res-20 = ", fmt(lr56 / lr20), " (need ≤ 1.05); res-56/plain-56 = ", fmt(lr56 / lp56),
                  " (need < 0.8); res-56 ", mean_sd_text(r56.fit_loss()), ", res-20 ", mean_sd_text(r20.fit_loss())));
  r.check("P2-rel", lr56 / lr20 < 0.5 * (lp56 / lp20),
          str_cat("res-56/res-20 = ", fmt(lr56 / lr20), " vs ½ · plain-56/plain-20 = ", fmt(0.5 * lp56 / lp20)));
  r.metric("ratio plain56/plain20", lp56 / lp20);
  r.metric("ratio res56/res20", lr56 / lr20);

  // P3: the depth sweep of the plain net (seed 0), on the training set.
  if (!s.sweep.empty()) {
    std::vector<double> depth = {20, 56}, loss = {p20.runs[0].fit_loss, p56.runs[0].fit_loss};
    std::vector<ArmRuns> sweep;
    for (int64_t L : s.sweep) {
      sweep.push_back(train_arm(plain_arm(L, c), {seeds[0]}, d));
      depth.push_back(static_cast<double>(L)), loss.push_back(sweep.back().runs[0].fit_loss);
    }
    const double rho = spearman(depth, loss);
    r.metric("spearman depth vs plain train loss", rho);
    Plot sp{.title = "Plain MLP: train loss vs depth (seed " + fmt_int(static_cast<int64_t>(seeds[0])) + ")",
            .xlabel = "depth L", .ylabel = "train loss", .log_y = true};
    Series ser{.name = "plain", .style = SeriesStyle::points};
    ser.x = depth, ser.y = loss;
    sp.series.push_back(ser);
    r.plot("plain_depth_sweep", "Plain nets get harder to train with depth (train loss, eval mode)", sp);
    r.check("P3", rho >= 0.8, str_cat("Spearman ρ(depth, plain train loss) over L ∈ {20, 56, 32, 44, 110} = ", fmt(rho),
                                      " (need ≥ 0.8)"));
    add_run_table(r, sweep, "depth_sweep");
  }
  std::string te;
  for (const ArmRuns& a : arms) te += str_cat(te.empty() ? "" : "; ", a.name, " ", mean_sd_text(a.test_error()));
  r.report("R1", "test error: " + te);
  if (s.preact)
    r.report("R2", str_cat("pre-activation res-56 train loss ", mean_sd_text(arms[4].fit_loss()), " vs original res-56 ",
                           fmt(lr56), " and res-20 ", fmt(lr20)));
  if (!ctx.quick) r.report("R3", cnn_cost(d, seeds[0]));
  add_run_table(r, arms);
  add_curve_plot(r, arms, "train_curves", "E1: train loss per epoch");
  Plot bars{.title = "Train loss (mean over seeds)", .ylabel = "train loss", .categories = {"L = 20", "L = 56"}};
  bars.series.push_back({.name = "plain", .y = {lp20, lp56}});
  bars.series.push_back({.name = "residual", .y = {lr20, lr56}});
  r.plot("train_loss_bars", "Plain vs residual train loss at depth 20 and 56", bars);
}

}  // namespace

Experiment make_e1_degradation() {
  return {.name = "e1-degradation",
          .title = "Degradation: deeper plain nets train worse; residual nets do not (MLP analogue)",
          .claim = "Deeper plain networks have higher training error than shallower ones (an optimisation "
                   "problem, not overfitting); with identity shortcuts the deeper network trains at least as well.",
          .source = "He, Zhang, Ren, Sun 2015, 'Deep Residual Learning for Image Recognition', arXiv 1512.03385",
          .paper = {{"CIFAR-10 plain nets: 'higher training error when going deeper' (Fig. 6; curves only)", Tag::paper},
                    {"ResNet test error 20/32/44/56/110 layers: 8.75/7.51/7.17/6.97/6.43%", Tag::paper},
                    {"ImageNet top-1 plain-18 27.94 vs plain-34 28.54; ResNet-18 27.88 vs ResNet-34 25.03", Tag::paper},
                    {"third-party CIFAR plain 20/56 test error 10.08/15.39%", Tag::second_hand}},
          .criteria = {{"P1", "train loss plain-56 > 1.2 × plain-20 and train error plain-56 > plain-20 (mean and every "
                              "paired seed)"},
                       {"P2", "paper's form: train loss res-56 ≤ 1.05 × res-20 and res-56 < 0.8 × plain-56 (means)"},
                       {"P2-rel", "relative form: res-56/res-20 < ½ · plain-56/plain-20 (ratios of mean train losses)"},
                       {"P3", "plain train loss rises with depth: Spearman ρ(L, train loss) ≥ 0.8 over L ∈ {20, 32, 44, "
                              "56, 110} (seed 0; measured on the training set, so not overfitting)"},
                       {"R1", "test errors", true},
                       {"R2", "pre-activation res-56 vs original res-56/res-20 (the calibration's note)", true},
                       {"R3", "the CNN version's measured cost (rescnn n = 3, 9)", true}},
          .criteria_note = "Thresholds are LAB.md §1(b)'s, fixed before the seeded runs. The calibration pilot found P2's "
                           "paper form failing in the MLP analogue at this budget; it is kept unchanged (expect 'not "
                           "reproduced') and the relative form P2-rel is added. The lr is chosen by LAB's one pilot "
                           "sweep {0.02, 0.05, 0.1} on plain-20 with a seed outside the run's seeds (full mode; quick "
                           "mode uses 0.05). Quick mode: subset 4000, 2 epochs, 1 seed, no sweep — a smoke run whose "
                           "verdicts do not count.",
          .default_seeds = 3,
          .quick_seeds = 1,
          .trains = true,
          .run = run_e1};
}

}  // namespace resin::lab
