// Analysis tools for any network seen as a BlockStack (stack.h): gradient flow, activation
// statistics, parameter/MAC tables, and gradients over a 1-D input grid with their autocorrelation
// (shattered gradients). None of them changes the model's parameters, their .grad (except through
// the backward a GradientFlowRecorder user runs) or its mode. activation_stats runs the stack in its
// current mode: in training mode BatchNorm normalises with batch statistics and updates its running
// statistics, as any training-mode forward does; call it on an eval-mode model to leave it untouched.
// The same holds for the f given to grid_gradients. cost_table runs every module in eval mode.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "resin/lab/stack.h"

namespace resin::lab {

// ---- gradient flow
// One backward pass: ‖∂E/∂x_p‖ (Frobenius norm over the whole batch) at every position p of the
// stack (p = 0 the stem output, p = i + 1 after block i) and ‖∂E/∂θ‖ for every parameter by name.
struct GradientFlowRecord {
  int64_t step = 0;
  double loss = 0;
  std::vector<double> output_grad_norms;  // size = blocks + 1; NaN where no gradient reached
  std::vector<std::pair<std::string, double>>
      param_grad_norms;  // model.named_parameters() order; NaN: no grad
};

// Usable at initialisation and during training:
//   GradientFlowRecorder rec(stack, model);
//   Tensor loss = cross_entropy(rec.forward(x), y);  // registers norm hooks on every block output
//   loss.backward();
//   rec.collect(step, loss.item());                  // reads the hooks and the parameters' .grad()
// The hooks only read the gradient (they do not keep it), so memory is that of a normal step.
// Parameter norms read .grad(): zero the gradients between steps as the optimiser does.
class GradientFlowRecorder {
 public:
  GradientFlowRecorder(BlockStack stack, const nn::Module& model);
  Tensor forward(const Tensor& input, RunOptions o = {});
  const GradientFlowRecord& collect(int64_t step, double loss);
  const std::vector<GradientFlowRecord>& history() const { return history_; }

 private:
  BlockStack stack_;
  const nn::Module* model_;
  std::shared_ptr<std::vector<double>> pending_;
  std::vector<GradientFlowRecord> history_;
};

// ‖t‖_F as a double.
double frobenius_norm(const Tensor& t);

// ---- activation statistics (no gradients)
struct ActivationStats {
  std::string position;  // "stem", then the block names
  double mean = 0, std = 0, rms = 0, max_abs = 0;
  double zero_fraction = 0;  // exact zeros (dead ReLU units)
};
std::vector<ActivationStats> activation_stats(const BlockStack& s, const Tensor& input,
                                              const RunOptions& o = {});

// ---- parameters and multiply-accumulates
struct CostRow {
  std::string name;  // stem/head module name or block name
  int64_t params = 0;
  int64_t macs = 0;  // for the whole example batch (conv2d + matmul, ops/profile.h)
};
// One row per stem module, block and head module, from one forward pass of `example` (no grad, each
// module in eval mode for the pass and then back in its own mode).
std::vector<CostRow> cost_table(const BlockStack& s, const Tensor& example);
// Parameters of `m` whose tensors have ≥ 2 dims (weight matrices and kernels, no biases/norm scales).
int64_t weight_count(const nn::Module& m);

// ---- gradients over a 1-D grid (Balduzzi et al. 2017)
// g_i = ∂f(x_i)/∂x_i for f: [N, 1] → [N, 1] (or [N]) evaluated on the grid as one batch, by one
// backward of Σ_i f(x_i). This is the per-point derivative only when f treats rows independently
// (batch statistics, if any, must be held fixed — see the E4 networks); otherwise it includes the
// coupling through the batch. dtype: f32 or f64. The gradient is taken with autograd::grad: the
// .grad of the parameters f uses is not touched.
std::vector<double> grid_gradients(const std::function<Tensor(const Tensor&)>& f,
                                   const std::vector<double>& grid, DType dtype = DType::f32);
// ACF(k) = Σ_i z_i z_{i+k} / Σ_i z_i², z = g − mean(g), k = 0..max_lag (ACF(0) = 1; all NaN when g
// is constant).
std::vector<double> autocorrelation(const std::vector<double>& g, size_t max_lag);
// n points evenly spaced on [lo, hi] (both included).
std::vector<double> linspace(double lo, double hi, size_t n);

}  // namespace resin::lab
