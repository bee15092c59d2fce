// Exact identities at initialisation: E2 (identity-path coefficient λ^L; x_L = x_l + Σ F_i),
// E8-P1/P2 (LAuReL starts as the baseline; added parameters), E11-P1 (2^B variance growth of a
// He-initialised norm-free stack; ReZero/SkipInit/Fixup start as the identity).
#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/lab/analysis.h"
#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/lab/experiments/lab_training.h"
#include "resin/models/lab_models.h"

namespace resin::lab {

using blocks::Mix;
using blocks::UnitPlacement;

namespace {

// ---- E2
void run_e2(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const int64_t depth = 54, width = 32;
  r.protocol(
      str_cat("res-MLP(", width, ", ", depth,
              ") in f64, full pre-activation units (f = identity), batch 4 of "
              "Gaussian inputs. (1) Shortcut h(x) = λx (Mix::scaled, λ_f = 1), λ ∈ {1, 0.9, 0.5}: the "
              "coefficient of x_0 along the identity path is measured as ∂⟨v, x_l⟩/∂x_0 / v with every "
              "block's backward restricted to its skip (lab/stack.h skip_path), at every depth l. (2) "
              "Identity h and f: x_L − x_l against Σ_{i≥l} F_i(x_i) from the blocks' own branch outputs, "
              "l ∈ {0, 27}; the same for the original unit (f = ReLU) as a contrast."));
  Plot p{.title = "Identity-path coefficient of x_0 in x_l (h(x) = λx)",
         .xlabel = "depth l",
         .ylabel = "coefficient",
         .log_y = true};
  Table& t = r.table("identity_path", "Identity-path coefficient at depth 54",
                     {"lambda", "measured", "lambda^54", "rel_error"});
  double worst_rel = 0, coef_half = 0;
  for (double lambda : {1.0, 0.9, 0.5}) {
    manual_seed(seeds[0]);
    auto net = models::make_res_mlp({.width = width,
                                     .blocks = depth,
                                     .placement = UnitPlacement::full_preact,
                                     .mix = Mix::scaled,
                                     .shortcut_scale = lambda});
    net->to(DType::f64);
    net->eval();
    BlockStack s = block_stack(*net);
    Tensor x0 = randn({4, width}, {.dtype = DType::f64}).set_requires_grad(true);
    Tensor v = randn({4, width}, {.dtype = DType::f64});
    std::vector<Tensor> xs;
    run_from_stem(s, x0,
                  {.modes = std::vector<BlockMode>(depth, BlockMode::skip_path),
                   .on_output = [&](size_t, const Tensor& x) { xs.push_back(x); },
                   .run_head = false});
    Series ser{.name = str_cat("λ = ", lambda)};
    double coef_last = 0;
    for (int64_t l = 1; l <= depth; ++l) {
      Tensor e = sum(mul(xs[static_cast<size_t>(l)], v));
      Tensor g = autograd::grad({e}, {x0}, {ones_like(e)}, /*retain_graph=*/true)[0];
      // g = coefficient · v elementwise; the ratio is the same in every element.
      const double coef = mean_of(div(g, v).to_vector());
      const double rel = std::abs(coef - std::pow(lambda, l)) / std::pow(lambda, l);
      const double elementwise = max_abs_diff(g, mul(v, std::pow(lambda, l))) / max_abs_of(g);
      worst_rel = nan_max(worst_rel, nan_max(rel, elementwise));
      ser.x.push_back(static_cast<double>(l));
      ser.y.push_back(coef);
      coef_last = coef;
    }
    t.add({fmt(lambda), fmt(coef_last), fmt(std::pow(lambda, depth)),
           fmt(std::abs(coef_last - std::pow(lambda, depth)) / std::pow(lambda, depth))});
    r.metric(str_cat("coef_lambda_", lambda, "_L54"), coef_last);
    if (lambda == 0.5) coef_half = coef_last;
    p.series.push_back(std::move(ser));
  }
  r.plot("identity_path", "The identity path's coefficient decays as λ^l (log scale)", p);
  r.check("I1", worst_rel <= 1e-13,
          str_cat("0.5^54 measured ", fmt(coef_half), " (theory 5.55112e-17); worst relative error ",
                  fmt(worst_rel)));

  // (2) x_L = x_l + Σ F_i.
  double worst_identity = 0, relu_dev = 0;
  for (UnitPlacement pl : {UnitPlacement::full_preact, UnitPlacement::original}) {
    manual_seed(seeds[0] + 1);
    auto net = models::make_res_mlp({.width = width, .blocks = depth, .placement = pl});
    net->to(DType::f64);
    net->eval();
    BlockStack s = block_stack(*net);
    NoGradGuard ng;
    std::vector<Tensor> xs;
    run_stack(s, randn({4, 784}, {.dtype = DType::f64}),
              {.on_output = [&](size_t, const Tensor& x) { xs.push_back(x); }, .run_head = false});
    for (int64_t l : {0, 27}) {
      Tensor sum_f = zeros_like(xs[0]);
      for (int64_t i = l; i < depth; ++i) {
        auto& blk = static_cast<blocks::Residual&>(*s.blocks[static_cast<size_t>(i)].second);
        sum_f = add(sum_f, blk.branch(xs[static_cast<size_t>(i)]));
      }
      const double dev =
          max_abs_diff(sub(xs[depth], xs[static_cast<size_t>(l)]), sum_f) / max_abs_of(xs[depth]);
      if (pl == UnitPlacement::full_preact)
        worst_identity = nan_max(worst_identity, dev);
      else
        relu_dev = nan_max(relu_dev, dev);
    }
  }
  r.metric("identity_sum_rel_error_preact", worst_identity);
  r.metric("identity_sum_rel_deviation_original", relu_dev);
  r.check("I2", worst_identity <= 1e-12,
          str_cat("max |x_L − x_l − ΣF_i| / max|x_L| = ", fmt(worst_identity), " (f64)"));
  r.report("I3", str_cat("original unit (ReLU after the addition): relative deviation ", fmt(relu_dev)));
}

// ---- E8
void run_e8(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const int64_t D = 64, B = 12, rank = 16, k = 3;
  r.protocol(
      str_cat("Pre-activation res-MLP(", D, ", ", B,
              ") (LAB §8 E8). Each LAuReL variant is built, then "
              "loads the baseline's weights (stem, branches, final, head; its own LAuReL parameters keep "
              "their init); outputs on a batch of 16 Fashion-MNIST-shaped Gaussian inputs are compared "
              "in eval and training mode. r = ",
              rank, ", k = ", k,
              ". Added parameters = (variant − "
              "baseline)/blocks, and LaurelBlock::added_parameters()."));
  struct Variant {
    std::string name;
    models::ResMlpOptions o;
    int64_t formula;
    std::string formula_text;
  };
  const models::ResMlpOptions base{.width = D, .blocks = B, .placement = UnitPlacement::full_preact};
  auto with = [&](bool rw, int64_t lr, int64_t pk, int64_t pr) {
    models::ResMlpOptions o = base;
    o.laurel_rw = rw, o.laurel_rank = lr, o.laurel_k = pk, o.laurel_pa_rank = pr;
    return o;
  };
  const std::vector<Variant> variants = {
      {"RW", with(true, 0, 0, 0), 2, "2"},
      {"LR r=16", with(false, rank, 0, 0), 2 * rank * D, "2rD"},
      {"PA k=3 (h low-rank r=16)", with(false, 0, k, rank), 2 * rank * D + k, "2rD + k"},
      {"RW+LR", with(true, rank, 0, 0), 2 + 2 * rank * D, "2 + 2rD"},
      {"RW+LR+PA (h = identity)", with(true, rank, k, 0), 2 + 2 * rank * D + k, "2 + 2rD + k"},
  };
  manual_seed(seeds[0]);
  auto baseline = models::make_res_mlp(base);
  models::ResMlpOptions deeper = base;
  deeper.blocks = B + 1;
  const int64_t base_params = baseline->parameter_count();
  Table& t = r.table("laurel_params", "Parameters added per block (D = 64, r = 16, k = 3)",
                     {"variant", "params", "added_per_block", "formula", "formula_value", "block_method",
                      "pct_over_baseline"});
  t.add({"baseline", fmt_int(base_params), "0", "", "", "", "0"});
  const int64_t deeper_params = models::make_res_mlp(deeper)->parameter_count();
  t.add({"baseline + 1 block", fmt_int(deeper_params), "", "", "", "",
         fmt(100.0 * static_cast<double>(deeper_params - base_params) / static_cast<double>(base_params))});
  Tensor x = randn({16, 784});
  bool counts_ok = true;
  std::string counts_text;
  double worst_init = 0;
  std::string init_text;
  for (const Variant& v : variants) {
    auto net = models::make_res_mlp(v.o);
    const nn::LoadReport rep = net->load_state_dict(baseline->state_dict(), /*strict=*/false);
    RESIN_CHECK(rep.unexpected.empty() && rep.mismatched.empty(), "e8: baseline weights do not fit ", v.name,
                ": ", rep.str());
    const int64_t added = (net->parameter_count() - base_params) / B;
    const int64_t method =
        static_cast<blocks::LaurelBlock&>(*net->blocks()->children()[0].second).added_parameters();
    counts_ok &= added == v.formula && method == v.formula && (net->parameter_count() - base_params) % B == 0;
    counts_text += str_cat(counts_text.empty() ? "" : "; ", v.name, ": ", added, " counted, ", method,
                           " by added_parameters(), formula ", v.formula_text,
                           v.formula_text == fmt_int(v.formula) ? "" : str_cat(" = ", v.formula));
    t.add({v.name, fmt_int(net->parameter_count()), fmt_int(added), v.formula_text, fmt_int(v.formula),
           fmt_int(method), fmt(100.0 * static_cast<double>(added * B) / static_cast<double>(base_params))});
    double diff = 0;
    for (bool train : {false, true}) {
      NoGradGuard ng;
      baseline->train(train);
      net->train(train);
      diff = nan_max(diff, max_abs_diff(net->forward(x), baseline->forward(x)));
    }
    r.metric("init_max_abs_diff " + v.name, diff);
    worst_init = nan_max(worst_init, diff);
    init_text += str_cat(init_text.empty() ? "" : "; ", v.name, ": ", fmt(diff));
  }
  r.check("P1", worst_init <= 1e-6, "max |logits − baseline logits| — " + init_text);
  r.check("P2", counts_ok, "added parameters per block — " + counts_text);
}

// ---- E11
double log2_variance(const Tensor& t) {
  // Var in log2, scaled by the largest magnitude first so that 2^1000-sized values do not overflow.
  const auto v = t.to_vector();
  const double m = max_abs_of(t);
  if (m == 0 || !std::isfinite(m)) return m == 0 ? -INFINITY : NAN;
  double mean = 0, sq = 0;
  for (double e : v) mean += e / m;
  mean /= static_cast<double>(v.size());
  for (double e : v) sq += (e / m - mean) * (e / m - mean);
  return std::log2(sq / static_cast<double>(v.size())) + 2 * std::log2(m);
}

void run_e11(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const std::vector<int64_t> depths = {100, 1000};
  r.protocol(
      "Norm-free res-MLP(64, B), B ∈ {100, 1000}, batch 32 of Gaussian inputs. Standard (in f64): full "
      "pre-activation units y = x + W2 relu(W1 relu(x)) with He-normal (fan-in) weights and zero biases; "
      "the variance ratio Var(x_B)/Var(x_0) of the block stack's output over its input (the stem "
      "output), computed in log2 with rescaling (no overflow at 2^1000). In f32: ReZero: the same unit with "
      "y = x + α·F(x), α = 0. SkipInit: the original (post-ReLU) unit with α = 0 at the end of the "
      "branch. Fixup: the Fixup unit (LAB §11; W2 = 0, W1 scaled by B^(−1/2), zero head).");
  Table& t = r.table("variance_growth", "He-init variance growth per block",
                     {"seed", "B", "log2_var_ratio", "per_block"});
  Plot p{.title = "Norm-free He-init stack: variance through the blocks",
         .xlabel = "block",
         .ylabel = "log2 Var(x_l)/Var(x_0)"};
  bool growth_ok = true;
  std::string growth_text;
  for (uint64_t seed : seeds)
    for (int64_t B : depths) {
      manual_seed(seed);
      auto net = models::make_res_mlp(
          {.width = 64, .blocks = B, .placement = UnitPlacement::full_preact, .norm = false});
      net->to(DType::f64);
      he_normal_init(*net->blocks(), /*zero_bias=*/true);
      BlockStack s = block_stack(*net);
      NoGradGuard ng;
      std::vector<double> lv;
      run_stack(
          s, randn({32, 784}, {.dtype = DType::f64}),
          {.on_output = [&](size_t, const Tensor& x) { lv.push_back(log2_variance(x)); }, .run_head = false});
      const double ratio = lv.back() - lv.front(), per = ratio / static_cast<double>(B);
      growth_ok &= per >= 0.8 && per <= 1.2;
      growth_text += str_cat(growth_text.empty() ? "" : "; ", "B=", B, " seed ", seed, ": ", fmt(per));
      t.add({fmt_int(static_cast<int64_t>(seed)), fmt_int(B), fmt(ratio), fmt(per)});
      r.metric(str_cat("log2_ratio_per_block_B", B, "_seed", seed), per);
      if (seed == seeds[0] && B == depths.back()) {
        Series ser{.name = "measured", .style = SeriesStyle::line};
        Series theory{.name = "2^l (theory)", .style = SeriesStyle::line};
        for (size_t l = 0; l < lv.size(); ++l) {
          ser.x.push_back(static_cast<double>(l)), ser.y.push_back(lv[l] - lv.front());
          theory.x.push_back(static_cast<double>(l)), theory.y.push_back(static_cast<double>(l));
        }
        p.series = {ser, theory};
      }
    }
  r.plot("variance_growth", "log2 of the variance ratio grows ≈ 1 per block (2^B)", p);
  r.check("P1a", growth_ok, "log2(Var ratio)/B — " + growth_text);

  struct Init {
    const char* name;
    models::ResMlpOptions o;
  };
  const std::vector<Init> inits = {
      {"ReZero",
       {.width = 64, .placement = UnitPlacement::full_preact, .mix = Mix::learned_scale, .norm = false}},
      {"SkipInit",
       {.width = 64, .placement = UnitPlacement::original, .mix = Mix::learned_scale, .norm = false}},
      {"Fixup", {.width = 64, .placement = UnitPlacement::fixup}}};
  bool identity_ok = true;
  std::string id_text;
  for (const Init& in : inits)
    for (int64_t B : depths) {
      manual_seed(seeds[0]);
      models::ResMlpOptions o = in.o;
      o.blocks = B;
      auto net = models::make_res_mlp(o);
      NoGradGuard ng;
      Tensor x = randn({32, 784});  // f32: x + 0·F(x) is exact in any precision
      Tensor x0 = net->stem_output(x);
      const double d = max_abs_diff(net->blocks()->forward(x0), x0);
      identity_ok &= d == 0.0;
      r.metric(str_cat("identity_max_abs_diff_", in.name, "_B", B), d);
      id_text += str_cat(id_text.empty() ? "" : "; ", in.name, " B=", B, ": ", fmt(d));
    }
  r.check("P1b", identity_ok, "max |stack output − stem output| — " + id_text);
}

}  // namespace

Experiment make_e2_identity() {
  return {
      .name = "e2-identity",
      .title = "Identity mappings: the identity path's coefficient and the additive unrolling (at init)",
      .claim =
          "With h(x) = λx the signal x_0 reaches unit L scaled by λ^L (vanishing or exploding for λ ≠ 1); "
          "with identity h and f, x_L = x_l + Σ_{i=l}^{L−1} F(x_i), so any shallow unit's signal "
          "reaches any deeper unit directly.",
      .source =
          "He, Zhang, Ren, Sun 2016, 'Identity Mappings in Deep Residual Networks', arXiv 1603.05027, "
          "eqs. (4), (5) and (7)",
      .paper =
          {{"x_L = x_l + Σ_{i=l}^{L−1} F(x_i, W_i) for identity h and f (eq. 4)", Tag::paper},
           {"h(x_l) = λ_l x_l gives x_L = (Π λ_i) x_l + Σ F̂ (eq. 7); 0.5^54 = 5.6e-17 for ResNet-110's 54 "
            "units",
            Tag::computed}},
      .criteria =
          {{"I1",
            "skip-only path coefficient of x_0 in x_l equals λ^l for every l ≤ 54 and λ ∈ {1, 0.9, "
            "0.5}, relative error ≤ 1e-13 (f64 rounding of 54 products)"},
           {"I2", "identity h and f: x_L − x_l = Σ_{i≥l} F_i(x_i) within 1e-12 relative (f64), l ∈ {0, 27}"},
           {"I3", "original unit (f = ReLU): deviation from the additive identity", true}},
      .run = run_e2};
}

Experiment make_e8_laurel_init() {
  return {
      .name = "e8-laurel-init",
      .title = "LAuReL: exact baseline at init and added-parameter counts",
      .claim =
          "LAuReL generalises the residual connection with learned scalars (RW), a low-rank linear map "
          "(LR) and previous activations (PA) at a tiny parameter cost; initialised so the network starts "
          "as the plain residual network.",
      .source = "Menghani, Kumar, Kumar 2024, arXiv 2411.07501 (ICML 2025), §2–§3.3",
      .paper = {{"RW: +2 params/layer (1 with a sigmoid)", Tag::paper},
                {"LR: +2rD params/layer; B = 0 at init", Tag::paper},
                {"PA: +2rD + k params/layer (low-rank h)", Tag::paper},
                {"ResNet-50/ImageNet: RW +0.003% params; RW+LR r=16 +1.68%; RW+LR+PA +2.40%", Tag::paper}},
      .criteria =
          {{"P1", "at init RW+LR and RW+LR+PA (and RW, LR, PA alone) give the baseline's logits within 1e-6"},
           {"P2", "added parameters per block equal 2 (RW), 2rD (LR), 2rD + k (PA), exactly"}},
      .criteria_note = "P3 (trained non-inferiority) belongs to the trained E8 experiment.",
      .run = run_e8};
}

Experiment make_e11_init() {
  return {
      .name = "e11-init",
      .title = "Norm-free deep residual nets at init: 2^B variance growth vs ReZero/SkipInit/Fixup identity",
      .claim =
          "Without normalisation, a He-initialised residual stack's output variance doubles per block; "
          "ReZero, SkipInit and Fixup start every residual branch at zero, so the network starts as the "
          "identity and trains without normalisation.",
      .source =
          "Bachlechner et al. 2020 (arXiv 2003.04887); De & Smith 2020 (arXiv 2002.10444); Zhang, "
          "Dauphin, Ma 2019 (arXiv 1901.09321)",
      .paper = {{"ReZero: x_{i+1} = x_i + α_i F(x_i), α_i = 0 at init", Tag::second_hand},
                {"SkipInit: learnable scalar at the end of each branch, 0 at init", Tag::memory},
                {"Fixup: zero-init the last layer of each branch and the classifier; scale the others by "
                 "L^(−1/(2m−2))",
                 Tag::second_hand},
                {"Var(x_B) ≈ 2^B Var(x_0) for He init without normalisation", Tag::computed}},
      .criteria =
          {{"P1a", "He init: log2(Var(x_B)/Var(x_0))/B ∈ [0.8, 1.2] for B ∈ {100, 1000}, every seed (f64)"},
           {"P1b",
            "ReZero, SkipInit and Fixup: block-stack output == stem output exactly (B ∈ {100, 1000})"}},
      .criteria_note =
          "Calibration (LAB.md): P1 tightened from \"≥ 1e10 at B = 100\" to the per-block exponent. "
          "P2 (training) belongs to the trained E11 experiment.",
      .default_seeds = 3,
      .quick_seeds = 1,
      .run = run_e11};
}

}  // namespace resin::lab
