// E9: reversible residual networks (Gomez et al. 2017), LAB.md §9: reconstruction, gradients of the
// reconstructing backward, activation memory flat in depth, and the time cost — at initialisation
// (the trained reconstruction check, P1 after one epoch, belongs to the trained E9 experiment).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "resin/autograd/grad_mode.h"
#include "resin/blocks/reversible.h"
#include "resin/lab/analysis.h"
#include "resin/lab/experiments/common.h"
#include "resin/lab/experiments/experiments.h"
#include "resin/models/lab_models.h"
#include "resin/tensor/storage.h"

namespace resin::lab {

namespace {

constexpr int64_t kBatch = 256;

struct Memory {
  int64_t retained = 0;     // bytes held after the forward (the graph's saved activations + output)
  int64_t peak_step = 0;    // peak above the baseline over forward + backward
  int64_t param_grads = 0;  // bytes of the parameter gradients (part of every method's peak)
};

Memory measure(nn::Module& net, const Tensor& x, const Tensor& y) {
  net.zero_grad();
  const int64_t base = allocator_stats().current_bytes;
  reset_peak_bytes();
  Tensor loss = cross_entropy(net.forward(x), y);
  Memory m;
  m.retained = allocator_stats().current_bytes - base;
  loss.backward();
  m.peak_step = allocator_stats().peak_bytes - base;
  for (const Tensor& p : net.parameters()) m.param_grads += p.numel() * 4;
  return m;
}

double step_seconds(nn::Module& net, const Tensor& x, const Tensor& y, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps + 1; ++i) {  // first run warms the primitive cache
    net.zero_grad();
    const auto t0 = std::chrono::steady_clock::now();
    cross_entropy(net.forward(x), y).backward();
    if (i > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median_of(t);
}

std::map<std::string, Tensor> grads_of(const nn::Module& net) {
  std::map<std::string, Tensor> g;
  for (const auto& [name, p] : net.named_parameters()) g[name] = p.grad().clone();
  return g;
}

struct GradError {
  struct Param {
    std::string name;
    double rel = 0, norm = 0;
  };
  std::vector<Param> per_param;  // worst first
  double worst = 0, global = 0;  // max per-parameter; whole gradient vector
};

// ‖g_recompute − g_store‖/‖g_store‖ per parameter for one Rev-MLP, one batch.
GradError grad_error(models::RevMlpOptions o, uint64_t seed, const Tensor& x, const Tensor& y) {
  manual_seed(seed);
  auto net = models::make_rev_mlp(o);
  net->zero_grad();
  cross_entropy(net->forward(x), y).backward();
  const auto g_rev = grads_of(*net);
  static_cast<blocks::ReversibleSequence&>(*net->blocks()).set_recompute(false);
  net->zero_grad();
  cross_entropy(net->forward(x), y).backward();
  GradError e;
  double num = 0, den = 0;
  for (const auto& [name, gs] : grads_of(*net)) {
    const double n = frobenius_norm(gs), d = frobenius_norm(sub(g_rev.at(name), gs));
    num += d * d, den += n * n;
    if (n > 0) e.per_param.push_back({name, d / n, n});
  }
  // NaN first (a valid ordering for sort, and a NaN gradient error becomes the worst).
  std::sort(e.per_param.begin(), e.per_param.end(), [](const auto& a, const auto& b) {
    return std::isnan(a.rel) ? !std::isnan(b.rel) : a.rel > b.rel;
  });
  e.worst = e.per_param.empty() ? 0 : e.per_param.front().rel;
  e.global = den > 0 ? std::sqrt(num / den) : 0;
  return e;
}

// Res-MLP twin with the same per-block parameter budget: full pre-activation units 64 → 32 → 64
// (two 64×32 matrices + BN) against the RevBlock's F and G (four 32×32 matrices + BN).
std::shared_ptr<models::LabNet> res_twin(int64_t blocks) {
  return models::make_res_mlp(
      {.width = 64, .blocks = blocks, .placement = blocks::UnitPlacement::full_preact, .hidden = 32});
}

void run_e9(const Context& ctx, Results& r) {
  const auto seeds = seed_list(ctx, r);
  const std::vector<int64_t> depths = {8, 32, 128};
  const int reps = ctx.quick ? 2 : 5;  // timed steps per network (median)
  r.protocol(str_cat(
      "Rev-MLP(64, B) (models/lab_models.h: F, G = Linear–BN–ReLU–Linear on 32 features), B ∈ {8, 32, "
      "128}, untrained, training mode (BN with batch statistics), batch ",
      kBatch,
      " of Gaussian 784-pixel inputs with random labels. Res twin: pre-activation res-MLP(64, B) with "
      "64 → 32 → 64 branches (parameters per block listed). Memory from the library allocator's "
      "counters (tensor/storage.h); times are medians of ",
      reps, " steps (forward + backward) with ",
      ctx.threads > 0 ? str_cat(ctx.threads, " thread(s)") : std::string("the default threads"), "."));
  manual_seed(seeds[0]);
  Tensor x = randn({kBatch, 784});
  Tensor y = randint(0, 10, {kBatch});

  // P1 (init): reconstruct the stack's input from its output through 128 blocks.
  {
    manual_seed(seeds[0]);
    auto net = models::make_rev_mlp({.blocks = 128});
    auto& stack = static_cast<blocks::ReversibleSequence&>(*net->blocks());
    NoGradGuard ng;
    Tensor x0 = net->stem_output(x);
    const double rel = max_rel_error(stack.inverse(stack.forward(x0)), x0);
    r.metric("reconstruction_max_rel_error_B128", rel);
    r.check("P1-init", rel < 1e-4,
            str_cat("max |x̂_0 − x_0| / max |x_0| = ", fmt(rel), " through 128 blocks (f32, untrained)"));
  }
  // P2: gradients of the reconstructing backward vs storing activations (same weights, same batch).
  double worst = 0;
  for (int64_t B : depths) {
    const GradError e = grad_error({.blocks = B}, seeds[0], x, y);
    r.metric(str_cat("grad_rel_error_B", B), e.worst);
    r.metric(str_cat("grad_rel_error_global_B", B), e.global);
    worst = nan_max(worst, e.worst);
    if (B != depths.back()) continue;
    Table& tw = r.table("grad_error_B128", "Parameters with the largest gradient discrepancy (B = 128)",
                        {"parameter", "rel_error_f32_stream", "grad_norm"});
    for (size_t i = 0; i < std::min<size_t>(8, e.per_param.size()); ++i)
      tw.add({e.per_param[i].name, fmt(e.per_param[i].rel), fmt(e.per_param[i].norm)});
    const GradError wide = grad_error({.blocks = B, .wide_stream = true}, seeds[0], x, y);
    r.metric("grad_rel_error_B128_wide_stream", wide.worst);
    r.report("P2-diag",
             str_cat("B = 128: whole-gradient relative error ", fmt(e.global), "; worst parameter ",
                     e.per_param.front().name, " (‖g‖ = ", fmt(e.per_param.front().norm),
                     "); with the f64 stream (wide_stream) the worst parameter error is ", fmt(wide.worst)));
  }
  r.check("P2", worst < 1e-4,
          str_cat("max over parameters of ‖g_rev − g_store‖/‖g_store‖ = ", fmt(worst),
                  " (B = 8, 32, 128; f32 stream)"));

  // P3: activation memory vs depth; P4: time.
  Table& t = r.table(
      "memory", "Bytes held after the forward, and the step's peak (above the baseline)",
      {"net", "B", "params_per_block", "retained_bytes", "peak_step_bytes", "param_grad_bytes", "step_ms"});
  Plot p{.title = "Activation memory vs depth",
         .xlabel = "blocks B",
         .ylabel = "bytes held after forward",
         .log_x = true,
         .log_y = true};
  Series srev{.name = "Rev-MLP"}, sres{.name = "res-MLP twin"};
  std::map<std::string, std::map<int64_t, double>> retained, seconds;
  for (int64_t B : depths) {
    manual_seed(seeds[0]);
    auto rev = models::make_rev_mlp({.blocks = B});
    auto res = res_twin(B);
    for (auto [name, net] :
         {std::pair<const char*, std::shared_ptr<models::LabNet>>{"rev", rev}, {"res", res}}) {
      const Memory m = measure(*net, x, y);
      const double ms = 1e3 * step_seconds(*net, x, y, reps);
      const int64_t per_block = net->blocks()->children()[0].second->parameter_count();
      retained[name][B] = static_cast<double>(m.retained);
      seconds[name][B] = ms;
      t.add({name, fmt_int(B), fmt_int(per_block), fmt_int(m.retained), fmt_int(m.peak_step),
             fmt_int(m.param_grads), fmt(ms)});
      (std::string(name) == "rev" ? srev : sres).x.push_back(static_cast<double>(B));
      (std::string(name) == "rev" ? srev : sres).y.push_back(static_cast<double>(m.retained));
    }
    // The same Rev-MLP storing its activations: the cost of recomputation alone.
    static_cast<blocks::ReversibleSequence&>(*rev->blocks()).set_recompute(false);
    seconds["rev-store"][B] = 1e3 * step_seconds(*rev, x, y, reps);
  }
  p.series = {srev, sres};
  r.plot("memory_vs_depth", "Bytes held after the forward pass: flat for Rev-MLP, linear for the res-MLP", p);
  const double rev_ratio = retained["rev"][128] / retained["rev"][8],
               res_ratio = retained["res"][128] / retained["res"][8];
  r.metric("retained_ratio_rev_128_8", rev_ratio);
  r.metric("retained_ratio_res_128_8", res_ratio);
  r.check("P3", rev_ratio < 1.2 && res_ratio > 8,
          str_cat("held after forward, B=128 / B=8: Rev ", fmt(rev_ratio), " (< 1.2), Res ", fmt(res_ratio),
                  " (> 8)"));
  std::string times;
  for (int64_t B : depths) {
    const double vs_res = seconds["rev"][B] / seconds["res"][B],
                 vs_store = seconds["rev"][B] / seconds["rev-store"][B];
    r.metric(str_cat("time_ratio_rev_over_res_B", B), vs_res);
    r.metric(str_cat("time_ratio_recompute_over_store_B", B), vs_store);
    times += str_cat(times.empty() ? "" : "; ", "B=", B, ": Rev/Res ", fmt(vs_res), ", recompute/store ",
                     fmt(vs_store));
  }
  r.report("P4", times + " (LAB: Rev/Res ∈ [1.2, 2.0]; theory 4/3 in FLOPs)");
}

}  // namespace

Experiment make_e9_reversible() {
  return {
      .name = "e9-reversible",
      .title = "Reversible residual networks: reconstruction, exact gradients, memory flat in depth",
      .claim =
          "A reversible residual network reconstructs each block's input from its output in the backward "
          "pass, so activation storage is independent of depth, at the price of one extra forward of F "
          "and G, with accuracy close to an equally sized ResNet.",
      .source =
          "Gomez, Ren, Urtasun, Grosse 2017, 'The Reversible Residual Network', arXiv 1707.04585; code "
          "github.com/renmengye/revnet-public",
      .paper = {{"y1 = x1 + F(x2), y2 = x2 + G(y1); x2 = y2 − G(y1), x1 = y1 − F(x2)", Tag::second_hand},
                {"activation storage independent of depth (abstract)", Tag::paper},
                {"extra compute ≈ 33% in theory; 1.5–2× in general implementations", Tag::second_hand},
                {"RevNet-104 ImageNet top-1 error 23.10% vs ResNet-101 23.01%", Tag::code}},
      .criteria = {{"P1-init",
                    "reconstructing x_0 through 128 blocks: max relative error < 1e-4 (f32; untrained — "
                    "the trained P1 is in the trained E9 experiment)"},
                   {"P2",
                    "parameter gradients of the reconstructing backward equal storing activations within "
                    "1e-4 relative (B = 8, 32, 128)"},
                   {"P2-diag", "where the gradient discrepancy sits; the same with an f64 stream", true},
                   {"P3", "bytes held after the forward: Rev(128)/Rev(8) < 1.2 while Res(128)/Res(8) > 8"},
                   {"P4", "time per step Rev/Res and recompute/store", true}},
      .criteria_note =
          "P3 measures the bytes the autograd graph holds after the forward (what the paper calls "
          "activation storage); the step's peak, which also holds the parameter gradients, is in "
          "the table. P4 is report-only (the brief; timings on a shared 2-core machine are noisy).",
      .run = run_e9};
}

}  // namespace resin::lab
