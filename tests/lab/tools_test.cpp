// The analysis tools on small networks, against quantities computed another way.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/lab/analysis.h"
#include "resin/lab/experiments/common.h"
#include "resin/lab/lab_nets.h"
#include "resin/lab/paths.h"
#include "resin/models/lab_models.h"

using namespace resin;
using namespace resin::lab;
using blocks::UnitPlacement;

namespace {

// max_abs_diff, max_abs_of, max_rel_error: experiments/common.h (NaN-propagating).

// n residual blocks y = x + W_i x (linear branches), f64: the path decomposition is exact.
std::shared_ptr<nn::Sequential> linear_residual_stack(int64_t n, int64_t d) {
  auto seq = std::make_shared<nn::Sequential>();
  for (int64_t i = 0; i < n; ++i) {
    auto branch = std::make_shared<nn::Linear>(nn::LinearOptions{.in = d, .out = d, .bias = false});
    seq->push_back(std::make_shared<blocks::Residual>(
        branch, blocks::ResidualOptions{.in = d, .out = d, .layer = blocks::Layer::linear}));
  }
  seq->to(DType::f64);
  return seq;
}

}  // namespace

TEST(LabCommon, ExactCheckMaximaPropagateNaN) {
  // std::max(m, NaN) returns m: an all-NaN output used to pass "max |diff| == 0".
  EXPECT_TRUE(std::isnan(nan_max(0.0, NAN)));
  EXPECT_TRUE(std::isnan(nan_max(NAN, 0.0)));
  EXPECT_EQ(nan_max(1.0, 2.0), 2.0);
  const Tensor nan2 = from_vector({NAN, NAN}, {2});
  EXPECT_TRUE(std::isnan(max_abs_of(nan2)));
  EXPECT_TRUE(std::isnan(max_abs_of(from_vector({1, NAN, 2}, {3}))));
  EXPECT_TRUE(std::isnan(max_abs_diff(nan2, zeros({2}))));
  EXPECT_TRUE(std::isnan(max_abs_diff(zeros({2}), nan2)));
  EXPECT_TRUE(std::isnan(max_rel_error(from_vector({1, NAN}, {2}), from_vector({1, 2}, {2}))));
  EXPECT_EQ(max_abs_diff(from_vector({1, -3}, {2}), from_vector({1, 1}, {2})), 4.0);
  EXPECT_EQ(max_rel_error(from_vector({1, 2}, {2}), from_vector({1, -4}, {2})), 1.5);
  EXPECT_THROW(max_abs_diff(zeros({2}), zeros({3})), Error);
  EXPECT_EQ(median_of({3, 1, 2}), 2.0);
  EXPECT_EQ(median_of({4, 1, 3, 2}), 2.5);
  EXPECT_TRUE(std::isnan(median_of({})));
  EXPECT_TRUE(std::isnan(median_of({1, NAN, 2})));
}

TEST(LabStack, RunStackEqualsForwardAndVisitsEveryPosition) {
  manual_seed(1);
  auto net = models::make_res_mlp({.width = 16, .blocks = 5, .placement = UnitPlacement::full_preact});
  net->eval();
  BlockStack s = block_stack(*net);
  ASSERT_EQ(s.size(), 5u);
  Tensor x = randn({4, 1, 28, 28});
  std::vector<size_t> seen;
  Tensor y = run_stack(s, x, {.on_output = [&](size_t p, const Tensor&) { seen.push_back(p); }});
  EXPECT_EQ(max_abs_diff(y, net->forward(x)), 0.0);
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3, 4, 5}));
  // A transformer and a conv ResNet are stacks too.
  models::TransformerClassifier tf({.dim = 16, .depth = 3, .heads = 2, .ff = 32});
  tf.eval();
  BlockStack ts = block_stack(tf);
  EXPECT_EQ(ts.size(), 3u);
  EXPECT_LT(max_abs_diff(run_stack(ts, x), tf.forward(x)), 1e-6);
  auto cnn = std::dynamic_pointer_cast<models::LabNet>(
      models::create_lab_model("rescnn:n=1,width=4", {.in_channels = 1}));
  cnn->eval();
  EXPECT_EQ(max_abs_diff(run_stack(block_stack(*cnn), x), cnn->forward(x)), 0.0);
  EXPECT_THROW(block_stack(*models::make_rev_mlp({.blocks = 2})), Error);
}

TEST(LabStack, DeletingAResidualBlockKeepsItsShortcut) {
  manual_seed(2);
  auto seq = linear_residual_stack(3, 4);
  BlockStack s = block_stack(*seq);
  Tensor x = randn({2, 4}, {.dtype = DType::f64});
  auto& b1 = *s.blocks[1].second;
  // Deleting block 1 = running blocks 0 and 2 only.
  Tensor expect = s.blocks[2].second->forward(s.blocks[0].second->forward(x));
  EXPECT_EQ(max_abs_diff(run_stack(s, x, {.modes = delete_blocks(3, {1})}), expect), 0.0);
  EXPECT_EQ(max_abs_diff(apply_block(b1, x, BlockMode::deleted), x), 0.0);
  // A plain block that changes the shape cannot be deleted.
  nn::Sequential plain({std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4, .out = 3})});
  EXPECT_THROW(run_stack(block_stack(plain), randn({2, 4}), {.modes = {BlockMode::deleted}}), Error);
  EXPECT_THROW(apply_block(*plain[0], randn({2, 4}), BlockMode::skip_path), Error);
  EXPECT_THROW(delete_blocks(3, {3}), Error);
}

TEST(LabStack, SplitAndDeletedModesKeepShortcutDropoutsEvalScale) {
  // Unrescaled shortcut dropout (He 2016's p = 0.5 arm) multiplies the shortcut by 1 − p in eval:
  // the split modes must give the full block's value, deletion the scaled shortcut.
  manual_seed(12);
  for (bool rescale : {false, true}) {
    auto branch = std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4, .out = 4});
    blocks::Residual b(branch, {.in = 4,
                                .out = 4,
                                .layer = blocks::Layer::linear,
                                .post = blocks::Post::relu,
                                .shortcut_dropout = 0.5,
                                .shortcut_dropout_rescale = rescale});
    b.to(DType::f64);
    b.eval();
    Tensor x = randn({3, 4}, {.dtype = DType::f64});
    const Tensor full = b.forward(x);
    EXPECT_LT(max_abs_diff(apply_block(b, x, BlockMode::skip_path), full), 1e-15) << rescale;
    EXPECT_LT(max_abs_diff(apply_block(b, x, BlockMode::branch_path), full), 1e-15) << rescale;
    EXPECT_EQ(max_abs_diff(apply_block(b, x, BlockMode::deleted), rescale ? x : mul(x, 0.5)), 0.0) << rescale;
  }
}

TEST(LabStack, ReorderingAndKendallTau) {
  Generator g(3);
  EXPECT_EQ(kendall_tau({0, 1, 2, 3}), 1.0);
  EXPECT_EQ(kendall_tau({3, 2, 1, 0}), -1.0);
  EXPECT_DOUBLE_EQ(kendall_tau({1, 0, 2, 3}), 1.0 - 4.0 / 12.0);
  const std::vector<size_t> cand = {1, 2, 3, 4};
  const auto order = swap_random_pairs(6, cand, 3, g);
  std::vector<size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<size_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(order[0], 0u);  // outside the candidates: untouched
  EXPECT_EQ(order[5], 5u);
  const auto pick = sample_without_replacement(cand, 4, g);
  EXPECT_EQ(std::set<size_t>(pick.begin(), pick.end()).size(), 4u);
  EXPECT_THROW(sample_without_replacement(cand, 5, g), Error);
  // Reordered stacks run (identity shortcuts only are reorder candidates).
  auto cnn = std::dynamic_pointer_cast<models::LabNet>(
      models::create_lab_model("rescnn:n=2,width=4", {.in_channels = 1}));
  BlockStack s = block_stack(*cnn);
  EXPECT_EQ(residual_blocks(s).size(), 6u);
  EXPECT_EQ(residual_blocks(s, true), (std::vector<size_t>{0, 1, 3, 5}));
}

TEST(LabPaths, SumOverAllPathsIsTheFullGradientForLinearBlocks) {
  // For y = Π (I + W_i) x the Jacobian is Σ over subsets S of Π_{i∈S} W_i: the path-restricted
  // backward (branch_path for S, skip_path elsewhere) must give each term.
  manual_seed(4);
  const int64_t n = 4;
  auto seq = linear_residual_stack(n, 5);
  BlockStack s = block_stack(*seq);
  Tensor x = randn({3, 5}, {.dtype = DType::f64}).set_requires_grad(true);
  Tensor v = randn({3, 5}, {.dtype = DType::f64});
  auto grad_with = [&](const std::vector<BlockMode>& modes) {
    Tensor e = sum(mul(run_from_stem(s, x, {.modes = modes}), v));
    return autograd::grad({e}, {x}, {ones_like(e)})[0];
  };
  const Tensor full = grad_with({});
  Tensor total = zeros_like(full);
  for (uint32_t mask = 0; mask < (1u << n); ++mask) {
    std::vector<BlockMode> modes;
    for (int64_t i = 0; i < n; ++i)
      modes.push_back(mask >> i & 1 ? BlockMode::branch_path : BlockMode::skip_path);
    total = add(total, grad_with(modes));
  }
  EXPECT_LT(max_abs_diff(total, full), 1e-12);
}

TEST(LabPaths, CountsAndBinomial) {
  manual_seed(5);
  auto net = models::make_res_mlp({.width = 8, .blocks = 54, .placement = UnitPlacement::full_preact});
  BlockStack s = block_stack(*net);
  const auto c = path_length_counts(s);
  const auto p = binomial_path_distribution(54);
  ASSERT_EQ(c.size(), 55u);
  EXPECT_EQ(c[27], 1946939425648112.0);             // C(54, 27), exact
  EXPECT_NEAR(100 * mass(p, 5, 17), 0.4537, 5e-5);  // LAB E3-P5
  EXPECT_NEAR(100 * mass(p, 19, 35), 98.0, 0.05);
  EXPECT_NEAR(mass(p, 0, 54), 1.0, 1e-12);
  // Deleting 10 blocks leaves 2^44 paths; a plain MLP has one.
  std::vector<size_t> del = {0, 5, 10, 15, 20, 25, 30, 35, 40, 45};
  double total = 0;
  for (double v : path_length_counts(s, delete_blocks(54, del))) total += v;
  EXPECT_EQ(total, std::ldexp(1.0, 44));
  EXPECT_EQ(path_length_counts(block_stack(*models::make_mlp({.width = 8, .depth = 6}))),
            (std::vector<double>{0, 0, 0, 0, 1}));
  auto deep = models::make_res_mlp({.width = 4, .blocks = 60});
  EXPECT_THROW(path_length_counts(block_stack(*deep)), Error);  // counts beyond 2^53
}

TEST(LabPaths, VeitSamplingAtTheExtremes) {
  // k = 0: the backward passes every skip only, so the gradient at x_0 is that of the head alone.
  manual_seed(6);
  auto net = models::make_res_mlp({.width = 8, .blocks = 6, .placement = UnitPlacement::full_preact});
  BlockStack s = block_stack(*net);
  Generator g(1);
  Tensor x = randn({8, 784});
  Tensor y = randint(0, 10, {8});
  auto loss = [&](const Tensor& out) { return cross_entropy(out, y); };
  const PathGradient pg = path_gradient_by_length(s, x, loss, {0, 6}, 3, g);
  EXPECT_EQ(pg.residual_blocks, 6);
  EXPECT_LT(pg.std_norm[0], 1e-6 * pg.mean_norm[0]);  // only one path of length 0 and one of length 6
  EXPECT_LT(pg.std_norm[1], 1e-6 * pg.mean_norm[1]);
  EXPECT_GT(pg.mean_norm[0], 0.0);
  // The head alone, on the stream x_L (the split modes keep the forward value) taken as the input:
  // with every block's backward through its identity skip, ∂E/∂x_0 = ∂E/∂x_L.
  Tensor xl;
  {
    NoGradGuard ng;
    xl = run_from_stem(s, run_stem(s, x), {.run_head = false});
  }
  xl = xl.detach().set_requires_grad(true);
  Tensor h = xl;
  for (const auto& [_, m] : s.head) h = m->forward(h);
  Tensor e = loss(h);
  const double head_norm = frobenius_norm(autograd::grad({e}, {xl}, {ones_like(e)})[0]);
  EXPECT_NEAR(pg.mean_norm[0], head_norm, 1e-5 * head_norm);
  EXPECT_THROW(path_gradient_by_length(s, x, loss, {7}, 1, g), Error);
  const LineFit f = fit_line({0, 1, 2}, {1, 3, 5});
  EXPECT_DOUBLE_EQ(f.slope, 2.0);
  EXPECT_DOUBLE_EQ(f.r2, 1.0);
}

TEST(LabAnalysis, GradientFlowRecorderMatchesDirectGradients) {
  manual_seed(7);
  auto net = models::make_res_mlp({.width = 8, .blocks = 4, .placement = UnitPlacement::full_preact});
  BlockStack s = block_stack(*net);
  Tensor x = randn({6, 784});
  Tensor y = randint(0, 10, {6});
  GradientFlowRecorder rec(s, *net);
  net->zero_grad();
  Tensor loss = cross_entropy(rec.forward(x), y);
  loss.backward();
  const GradientFlowRecord& r = rec.collect(0, loss.item());
  ASSERT_EQ(r.output_grad_norms.size(), 5u);
  // Direct: retain the block outputs of a second, identical forward.
  std::vector<Tensor> xs;
  Tensor loss2 = cross_entropy(run_stack(s, x,
                                         {.on_output =
                                              [&](size_t, const Tensor& t) {
                                                t.retain_grad();
                                                xs.push_back(t);
                                              }}),
                               y);
  net->zero_grad();
  loss2.backward();
  for (size_t p = 0; p < xs.size(); ++p)
    EXPECT_NEAR(r.output_grad_norms[p], frobenius_norm(xs[p].grad()), 1e-6 * r.output_grad_norms[p]) << p;
  ASSERT_EQ(r.param_grad_norms.size(), net->named_parameters().size());
  EXPECT_EQ(r.param_grad_norms[0].first, net->named_parameters()[0].first);
  EXPECT_GT(r.param_grad_norms[0].second, 0.0);
  EXPECT_THROW(rec.collect(1, 0.0), Error);  // no new forward
}

TEST(LabAnalysis, ActivationStatsAndCosts) {
  nn::Sequential seq({nn::ReLU()});
  BlockStack s = block_stack(seq);
  const auto st = activation_stats(s, from_vector({-1, -2, 3, 4}, {2, 2}));
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].position, "stem");
  EXPECT_DOUBLE_EQ(st[0].mean, 1.0);
  EXPECT_DOUBLE_EQ(st[1].zero_fraction, 0.5);
  EXPECT_DOUBLE_EQ(st[1].max_abs, 4.0);
  EXPECT_DOUBLE_EQ(st[1].rms, 2.5);
  auto net = models::make_res_mlp({.width = 16, .blocks = 2});
  net->eval();
  const auto rows = cost_table(block_stack(*net), randn({3, 784}));
  ASSERT_EQ(rows.size(), 4u);  // stem, 2 blocks, head
  EXPECT_EQ(rows[0].macs, 3 * 784 * 16);
  EXPECT_EQ(rows[1].macs, 3 * 2 * 16 * 16);
  EXPECT_EQ(rows[3].macs, 3 * 16 * 10);
  int64_t params = 0;
  for (const auto& r : rows) params += r.params;
  EXPECT_EQ(params, net->parameter_count());
  EXPECT_EQ(weight_count(*make_resnext_mlp({.cardinality = 4, .group_width = 19})->blocks()),
            8 * 4 * (2 * 128 * 19 + 19 * 19));
}

TEST(LabAnalysis, CostTableAndGridGradientsLeaveTheModelAlone) {
  manual_seed(13);
  auto net = models::make_res_mlp({.width = 8, .blocks = 2});  // BN, training mode
  std::vector<std::pair<std::string, std::vector<double>>> before;
  for (const auto& [n, b] : net->named_buffers()) before.emplace_back(n, b.to_vector());
  ASSERT_FALSE(before.empty());
  cost_table(block_stack(*net), randn({5, 784}));
  EXPECT_TRUE(net->is_training());
  const auto after = net->named_buffers();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_EQ(after[i].second.to_vector(), before[i].second) << before[i].first;
  // grid_gradients differentiates w.r.t. the grid only: f's parameters get no .grad.
  auto lin = std::make_shared<nn::Linear>(nn::LinearOptions{.in = 1, .out = 1});
  lin->to(DType::f64);
  const auto g = grid_gradients([&](const Tensor& x) { return lin->forward(x); }, {0, 1, 2}, DType::f64);
  const double w = lin->named_parameters()[0].second.to_vector()[0];
  EXPECT_EQ(g, (std::vector<double>{w, w, w}));
  for (const auto& [n, p] : lin->named_parameters()) EXPECT_FALSE(p.grad().defined()) << n;
}

TEST(LabAnalysis, GridGradientsAndAutocorrelation) {
  const auto grid = linspace(-1, 1, 5);
  EXPECT_EQ(grid, (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
  const auto g = grid_gradients([](const Tensor& x) { return mul(x, x); }, grid, DType::f64);
  EXPECT_EQ(g, (std::vector<double>{-2, -1, 0, 1, 2}));
  const auto acf = autocorrelation({1, -1, 1, -1}, 2);
  EXPECT_DOUBLE_EQ(acf[0], 1.0);
  EXPECT_DOUBLE_EQ(acf[1], -0.75);
  EXPECT_DOUBLE_EQ(acf[2], 0.5);
  EXPECT_TRUE(std::isnan(autocorrelation({2, 2, 2}, 1)[1]));
  EXPECT_THROW(autocorrelation({1, 2}, 2), Error);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 25, 100}), 1.0, 1e-15);
  EXPECT_NEAR(spearman({1, 2, 3}, {3, 2, 1}), -1.0, 1e-15);
}

TEST(LabAnalysis, ClassificationErrorCountsMistakes) {
  // A stack whose "logits" are the inputs: predictions are the argmax of each row.
  nn::Sequential seq;
  BlockStack s = block_stack(seq);
  Tensor x = from_vector({0, 1, 1, 0, 0, 1}, {3, 2});
  Tensor y = from_data<int64_t>({1, 1, 1}, {3});
  EXPECT_DOUBLE_EQ(classification_error(s, x, y, {}, 2), 1.0 / 3.0);
}
