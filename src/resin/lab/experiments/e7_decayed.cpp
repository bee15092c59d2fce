// E7: decayed identity shortcuts in a masked autoencoder (Zhang, Jiang, Gao, Willett, Maire 2024),
// LAB.md §7(b): a masked MLP autoencoder on Fashion-MNIST patches whose encoder shortcuts decay with
// depth (α_l from 1 to α_min, the official code's schedule), evaluated by kNN and a linear probe on the
// encoder's features of unmasked images. Exploratory: a null result is plausible and reported as such.
#include <algorithm>
#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/blocks/units.h"
#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/lab/stack.h"
#include "resin/models/lab_models.h"
#include "resin/nn/init.h"

namespace resin::lab {

namespace {

using blocks::Activation;
using blocks::UnitPlacement;

constexpr int64_t kDim = 96, kHidden = 192, kPatches = 49, kMasked = 37;  // 75% of the 7×7 grid of 4×4 patches

std::shared_ptr<nn::Sequential> fusion_mlp() {
  auto last = std::make_shared<nn::Linear>(nn::LinearOptions{.in = kDim, .out = kDim});
  for (auto& [_, p] : last->own_parameters()) nn::init::constant_(p, 0.0);  // zero-init: starts as "no skip"
  return std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Linear>(nn::LinearOptions{.in = kDim, .out = kDim}), nn::GELU(), last});
}

// Encoder: Linear(784 + 49 → 96), `blocks` Pre-LN MLP units y = α_l·x + W2 GELU(W1 LN(x)) (W2 zero-init),
// final LN. Decoder: 4 Pre-LN units, the k-th (k = 0..3) preceded by h += Fuse_k(output of encoder block
// (4 − k)·⌊blocks/4⌋): the first decoder unit takes the deepest skip, the last the shallowest (U-Net
// order; zero-init fusion), then LN → Linear(96 → 784).
class MaskedAutoencoder : public nn::Module {
 public:
  MaskedAutoencoder(int64_t blocks, double alpha_min, bool skips) : skips_(skips) {
    encoder_ = models::make_res_mlp({.in = 784 + kPatches, .width = kDim, .blocks = blocks,
                                     .placement = UnitPlacement::ln_pre, .activation = Activation::gelu,
                                     .hidden = kHidden, .alpha_min = alpha_min, .zero_init_last = true});
    register_module("encoder", encoder_);
    auto dec = std::make_shared<nn::Sequential>(), fuse = std::make_shared<nn::Sequential>();
    for (int i = 0; i < 4; ++i) {
      dec->push_back(blocks::make_unit({.residual = {.in = kDim, .out = kDim, .layer = blocks::Layer::linear},
                                        .placement = UnitPlacement::ln_pre, .hidden = kHidden,
                                        .activation = Activation::gelu}));
      fuse->push_back(fusion_mlp());
    }
    decoder_ = register_module("decoder", dec);
    fuse_ = register_module("fuse", fuse);
    out_norm_ = register_module("out_norm", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {kDim}}));
    out_ = register_module("out", std::make_shared<nn::Linear>(nn::LinearOptions{.in = kDim, .out = 784}));
    stack_ = block_stack(*encoder_);
  }
  std::string type_name() const override { return "MaskedAutoencoder"; }
  // Features of unmasked images: the encoder's final LN output [N, 96].
  Tensor forward(const Tensor& x) override {
    std::vector<Tensor> skips;
    return encode(input(x.flatten(1), zeros({x.size(0), kPatches}, {.device = x.device()})), skips);
  }
  // MSE on the masked pixels, with a fresh random mask per image (default generator).
  Tensor masked_loss(const Tensor& images) {
    const int64_t n = images.size(0);
    Tensor x = images.flatten(1).contiguous();
    Tensor patch_mask = zeros({n, kPatches}), pixel_mask = zeros({n, 784});
    float* pm = patch_mask.data<float>();
    float* px = pixel_mask.data<float>();
    std::vector<size_t> all(kPatches);
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    for (int64_t i = 0; i < n; ++i)
      for (size_t p : sample_without_replacement(all, kMasked, default_generator())) {
        pm[i * kPatches + static_cast<int64_t>(p)] = 1;
        const int64_t r0 = static_cast<int64_t>(p) / 7 * 4, c0 = static_cast<int64_t>(p) % 7 * 4;
        for (int64_t r = r0; r < r0 + 4; ++r)
          for (int64_t c = c0; c < c0 + 4; ++c) px[i * 784 + r * 28 + c] = 1;
      }
    // The masks are drawn on the host; the loss is computed where the images are.
    patch_mask = patch_mask.to(x.device()), pixel_mask = pixel_mask.to(x.device());
    std::vector<Tensor> skips;
    Tensor h = encode(input(mul(x, add(neg(pixel_mask), 1.0)), patch_mask), skips);
    for (size_t k = 0; k < 4; ++k) {
      if (skips_) h = add(h, fuse_->children()[k].second->forward(skips[3 - k]));
      h = decoder_->children()[k].second->forward(h);
    }
    Tensor err = sub(out_->forward(out_norm_->forward(h)), x);
    return div(sum(mul(mul(err, err), pixel_mask)), sum(pixel_mask));
  }

 private:
  static Tensor input(const Tensor& pixels, const Tensor& patch_mask) { return concat({pixels, patch_mask}, 1); }
  Tensor encode(const Tensor& in, std::vector<Tensor>& skips) {
    const size_t every = stack_.size() / 4;
    Tensor h = run_from_stem(stack_, run_stem(stack_, in),
                             {.on_output = [&](size_t p, const Tensor& x) {
                                if (p > 0 && p % every == 0) skips.push_back(x);
                              },
                              .run_head = false});
    return encoder_->child("final")->forward(h);
  }
  bool skips_;
  std::shared_ptr<models::LabNet> encoder_;
  nn::ModulePtr decoder_, fuse_, out_norm_, out_;
  BlockStack stack_;
};

// Features [N, 96] of images (eval mode, no gradients), computed on the model's device and returned
// in host memory (the probes' data, like the images).
Tensor features(MaskedAutoencoder& m, const Tensor& x) {
  NoGradGuard ng;
  m.eval();
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < x.size(0); b += 1000)
    parts.push_back(
        m.forward(x.narrow(0, b, std::min<int64_t>(1000, x.size(0) - b)).to(m.device())).to(Device::cpu()));
  m.train();
  return concat(parts, 0).contiguous();
}

// kNN accuracy (k = 20, cosine similarity, majority vote; ties to the larger similarity sum).
double knn_accuracy(const Tensor& bank, const Tensor& bank_y, const Tensor& query, const Tensor& query_y, int64_t k) {
  NoGradGuard ng;
  auto unit = [](const Tensor& f) { return div(f, add(sqrt(sum(mul(f, f), {1}, true)), 1e-12)); };
  const Tensor b = unit(bank), bt = b.transpose(0, 1).contiguous();
  const auto by = bank_y.values<int64_t>(), qy = query_y.values<int64_t>();
  int64_t right = 0;
  for (int64_t q0 = 0; q0 < query.size(0); q0 += 500) {
    const int64_t len = std::min<int64_t>(500, query.size(0) - q0);
    const auto sim = matmul(unit(query.narrow(0, q0, len)), bt).to_vector();
    const size_t nb = static_cast<size_t>(bank.size(0));
    std::vector<size_t> idx(nb);
    for (int64_t i = 0; i < len; ++i) {
      const double* row = sim.data() + static_cast<size_t>(i) * nb;
      for (size_t j = 0; j < nb; ++j) idx[j] = j;
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](size_t a, size_t c) { return row[a] > row[c]; });
      std::vector<double> votes(10, 0), sims(10, 0);
      for (int64_t j = 0; j < k; ++j) votes[static_cast<size_t>(by[idx[j]])] += 1, sims[static_cast<size_t>(by[idx[j]])] += row[idx[j]];
      size_t best = 0;
      for (size_t c = 1; c < 10; ++c)
        if (votes[c] > votes[best] || (votes[c] == votes[best] && sims[c] > sims[best])) best = c;
      right += static_cast<int64_t>(best) == qy[static_cast<size_t>(q0 + i)];
    }
  }
  return static_cast<double>(right) / static_cast<double>(query.size(0));
}

// Eigenvalues of a symmetric matrix (cyclic Jacobi; small n).
std::vector<double> symmetric_eigenvalues(std::vector<double> a, size_t n) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) off += a[p * n + q] * a[p * n + q];
    if (off < 1e-22) break;
    for (size_t p = 0; p < n; ++p)
      for (size_t q = p + 1; q < n; ++q) {
        if (std::abs(a[p * n + q]) < 1e-300) continue;
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < n; ++k) {  // columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq, a[k * n + q] = s * akp + c * akq;
        }
        for (size_t k = 0; k < n; ++k) {  // rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk, a[q * n + k] = s * apk + c * aqk;
        }
      }
  }
  std::vector<double> ev(n);
  for (size_t i = 0; i < n; ++i) ev[i] = a[i * n + i];
  return ev;
}

// LAB's effective rank ρ = −Σ σ̄_i log σ̄_i, σ̄ = σ/Σσ over the singular values of the centred features.
double effective_rank(const Tensor& f) {
  NoGradGuard ng;
  const Tensor c = sub(f, mean(f, {0}, true));
  const auto g = matmul(c.transpose(0, 1), c).to_vector();
  const auto ev = symmetric_eigenvalues(g, static_cast<size_t>(f.size(1)));
  double total = 0, h = 0;
  for (double e : ev) total += std::sqrt(std::max(e, 0.0));
  for (double e : ev) {
    const double p = std::sqrt(std::max(e, 0.0)) / total;
    if (p > 0) h -= p * std::log(p);
  }
  return h;
}

struct Probe {
  double knn = 0, lp = 0, rank = 0, recon = 0;
};

Probe probe(MaskedAutoencoder& m, const LabTrainingData& d, uint64_t seed, int64_t lp_epochs) {
  Probe p;
  const Tensor ftr = features(m, d.train_x), fte = features(m, d.test_x);
  p.knn = knn_accuracy(ftr, d.train_y, fte, d.test_y, 20);
  p.rank = effective_rank(fte);
  // Linear probe: softmax regression on standardised features.
  Tensor mu = mean(ftr, {0}, true), sd = add(sqrt(var(ftr, {0}, 0, true)), 1e-6);
  LabTrainingData fd{.device = d.device, .train_x = div(sub(ftr, mu), sd).contiguous(), .train_y = d.train_y};
  fd.fit_x = fd.train_x, fd.fit_y = d.train_y;
  fd.test_x = div(sub(fte, mu), sd).contiguous(), fd.test_y = d.test_y;
  manual_seed(seed);
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions{.in = kDim, .out = 10});
  p.lp = 1.0 - train_classifier(*lin, fd, {.epochs = lp_epochs, .lr = 0.1, .weight_decay = 0, .seed = seed}).test_error;
  return p;
}

void run_e7(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const bool q = ctx.quick;
  const int64_t subset = q ? 3000 : 30000, epochs = q ? 1 : 5, blocks = q ? 8 : 16, lp_epochs = q ? 5 : 20;
  const LabTrainingData d = load_training_data(ctx, subset, 10000, q ? 2000 : 0);
  const std::vector<double> alphas = q ? std::vector<double>{1.0, 0.6} : std::vector<double>{1.0, 0.6, 0.4};
  r.protocol(str_cat("Masked MLP autoencoder: 7×7 grid of 4×4 patches, ", kMasked, " of 49 masked per image (zeros + a "
                     "49-dim mask indicator), encoder Linear(833→96) + ", blocks, " Pre-LN MLP units (96→192→96, "
                     "GELU, W2 zero-init) with shortcut α_l = 1 − (1 − α_min)·l/(", blocks - 1,
                     ") (official code's schedule), final LN; decoder 4 Pre-LN units fed by zero-init fusion MLPs from "
                     "encoder blocks ", blocks / 4, "/", blocks / 2, "/", 3 * blocks / 4, "/", blocks,
                     ", LN, Linear(96→784); MSE on the masked pixels. AdamW lr 1e-3 (constant), weight decay 0.05 on "
                     "weight matrices, batch 128, subset ", subset, ", ", epochs, " epochs. Eval on unmasked images: "
                     "features = encoder output; kNN (k = 20, cosine, majority vote) with the ", subset,
                     " training images as the bank, on ", d.test_x.size(0), " test images; linear probe = softmax "
                     "regression on standardised features (SGD lr 0.1, ", lp_epochs, " epochs, step decay); effective "
                     "rank −Σ σ̄ log σ̄ of the centred test features."));
  struct Arm7 {
    std::string name;
    double alpha_min;
    bool skips;
    std::vector<Probe> probes;
    std::vector<double> recon;
  };
  std::vector<Arm7> arms;
  for (double a : alphas) arms.push_back({str_cat("alpha_min ", fmt(a)), a, true, {}, {}});
  if (!q) arms.push_back({"alpha_min 0.6, no skips", 0.6, false, {}, {}});
  for (Arm7& a : arms)
    for (uint64_t seed : seeds) {
      manual_seed(seed);
      auto m = std::make_shared<MaskedAutoencoder>(blocks, a.alpha_min, a.skips);
      const TrainResult t = train_classifier(
          *m, d,
          {.epochs = epochs, .optimiser = Optimiser::adamw, .lr = 1e-3, .weight_decay = 0.05,
           .schedule = Schedule::constant, .seed = seed,
           .loss = [](nn::Module& mm, const Tensor& x, const Tensor&) { return static_cast<MaskedAutoencoder&>(mm).masked_loss(x); }});
      a.probes.push_back(probe(*m, d, seed, lp_epochs));
      a.recon.push_back(t.curve.empty() ? NAN : t.curve.back().running_loss);
      progress("e7", str_cat(a.name, " seed ", seed, ": recon ", fmt(a.recon.back()), ", kNN ", fmt(a.probes.back().knn),
                             ", LP ", fmt(a.probes.back().lp), ", rank ", fmt(a.probes.back().rank), ", ", fmt(t.seconds), " s"));
    }
  auto col = [](const Arm7& a, double Probe::*f) {
    std::vector<double> v;
    for (const Probe& p : a.probes) v.push_back(p.*f);
    return v;
  };
  Table& t = r.table("summary", "Per arm: means over seeds (accuracies as fractions)",
                     {"arm", "alpha_eff", "recon_mse", "knn_acc", "linear_probe_acc", "effective_rank"});
  for (const Arm7& a : arms) {
    double eff = 1;
    for (double al : blocks::attenuation_schedule(blocks, a.alpha_min)) eff *= al;
    t.add({a.name, fmt(eff), fmt(mean_of(a.recon)), fmt(mean_of(col(a, &Probe::knn))), fmt(mean_of(col(a, &Probe::lp))),
           fmt(mean_of(col(a, &Probe::rank)))});
    r.metric("knn " + a.name, mean_of(col(a, &Probe::knn)));
    r.metric("linear_probe " + a.name, mean_of(col(a, &Probe::lp)));
    r.metric("effective_rank " + a.name, mean_of(col(a, &Probe::rank)));
  }
  // P1: the best α_min < 1 (by mean kNN) against α_min = 1, paired by seed.
  size_t best = 1;
  for (size_t i = 1; i < alphas.size(); ++i)
    if (mean_of(col(arms[i], &Probe::knn)) > mean_of(col(arms[best], &Probe::knn))) best = i;
  const auto diff_knn = [&](size_t i, double Probe::*f) {
    std::vector<double> dv;
    for (size_t s = 0; s < seeds.size(); ++s) dv.push_back(arms[i].probes[s].*f - arms[0].probes[s].*f);
    return dv;
  };
  const auto dk = diff_knn(best, &Probe::knn);
  const bool all_pos = std::all_of(dk.begin(), dk.end(), [](double v) { return v > 0; });
  r.check("P1", mean_of(dk) >= 0.01 && all_pos,
          str_cat("best decayed arm ", arms[best].name, ": kNN gain over α_min = 1 ", mean_sd_text(dk),
                  " (need mean ≥ 0.01 and every paired difference > 0)"));
  const auto dl = diff_knn(best, &Probe::lp);
  std::string p2 = str_cat("linear probe gain of ", arms[best].name, " ", mean_sd_text(dl), "; effective rank ",
                           fmt(mean_of(col(arms[0], &Probe::rank))), " (α_min = 1) vs ", fmt(mean_of(col(arms[best], &Probe::rank))));
  if (!q)
    p2 += str_cat("; without skips (α_min 0.6) LP ", fmt(mean_of(col(arms.back(), &Probe::lp))), " vs with ",
                  fmt(mean_of(col(arms[1], &Probe::lp))));
  r.report("P2", p2);
  Table& tr = r.table("runs", "Every run", {"arm", "seed", "recon_mse", "knn_acc", "linear_probe_acc", "effective_rank"});
  for (const Arm7& a : arms)
    for (size_t s = 0; s < seeds.size(); ++s)
      tr.add({a.name, fmt_int(static_cast<int64_t>(seeds[s])), fmt(a.recon[s]), fmt(a.probes[s].knn), fmt(a.probes[s].lp),
              fmt(a.probes[s].rank)});
  Plot bars{.title = "Probe accuracy by shortcut decay", .ylabel = "accuracy"};
  Series sk{.name = "kNN (k = 20)"}, sl{.name = "linear probe"};
  for (const Arm7& a : arms) {
    bars.categories.push_back(a.name);
    sk.y.push_back(mean_of(col(a, &Probe::knn))), sl.y.push_back(mean_of(col(a, &Probe::lp)));
  }
  bars.series = {sk, sl};
  r.plot("probes", "kNN and linear-probe accuracy of the encoder features (mean over seeds)", bars);
}

}  // namespace

Experiment make_e7_decayed() {
  return {.name = "e7-decayed",
          .title = "Decayed identity shortcuts in a masked autoencoder: better features for kNN / linear probes?",
          .claim = "Decaying the identity shortcut's weight with depth (α_l from 1 to α_min) in a masked autoencoder's "
                   "encoder yields more abstract, lower-rank features: much higher kNN and linear-probe accuracy.",
          .source = "Zhang, Jiang, Gao, Willett, Maire 2024, arXiv 2404.10947; code github.com/xiao7199/"
                    "decayed_Identity_shortcuts (MAE/models_mae.py)",
          .paper = {{"MAE ViT-B/16 ImageNet-1K: kNN 27.4 → 63.9, linear probe 67.8 → 72.7", Tag::paper},
                    {"decay = 1 − linspace(0, 1, 2·depth)·(1 − min_decay), one α per sublayer, encoder only; fc2 and "
                     "attention proj zero-init; encoder→decoder skips with zero-init fusion",
                     Tag::code},
                    {"ImageNet-100 LP: standard 76.5, decayed (α_min 0.6) 83.6, without the encoder-decoder skip 61.5",
                     Tag::second_hand}},
          .criteria = {{"P1", "the best α_min < 1 improves kNN accuracy over α_min = 1 by ≥ 1.0 pp (mean), with every "
                              "paired difference > 0"},
                       {"P2", "linear probe, no-skip ablation and effective rank (LAB: report only)", true}},
          .criteria_note = "LAB.md §7(b), exploratory; honest expectation: Fashion-MNIST raw-pixel kNN is already ≈ 85%, "
                           "so a null result is plausible. The decay runs over the 16 encoder units (one sublayer each). "
                           "Quick mode (8 blocks, α_min ∈ {1, 0.6}, subset 3000, 1 epoch, 1 seed) is a smoke run.",
          .default_seeds = 3,
          .quick_seeds = 1,
          .trains = true,
          .run = run_e7};
}

}  // namespace resin::lab
