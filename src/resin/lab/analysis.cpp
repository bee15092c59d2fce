#include "resin/lab/analysis.h"

#include <cmath>
#include <limits>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/ops/profile.h"

namespace resin::lab {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

double frobenius_norm(const Tensor& t) {
  NoGradGuard ng;
  double s = 0;
  for (double v : t.to_vector()) s += v * v;
  return std::sqrt(s);
}

GradientFlowRecorder::GradientFlowRecorder(BlockStack stack, const nn::Module& model)
    : stack_(std::move(stack)), model_(&model) {}

Tensor GradientFlowRecorder::forward(const Tensor& input, RunOptions o) {
  // One slot per position; a hook writes its slot when the gradient passes. A fresh vector per
  // forward, so hooks of an older graph cannot write into this step's record.
  auto slots = std::make_shared<std::vector<double>>(stack_.size() + 1, kNaN);
  pending_ = slots;
  auto user = o.on_output;
  o.on_output = [slots, user](size_t p, const Tensor& x) {
    if (user) user(p, x);
    if (!x.requires_grad() || p >= slots->size()) return;
    x.register_hook([slots, p](const Tensor& g) {
      const double n = frobenius_norm(g);
      double& s = (*slots)[p];
      // The same tensor can sit at two positions (a deleted identity block); sum of squares per slot.
      s = std::isnan(s) ? n : std::sqrt(s * s + n * n);
      return Tensor();
    });
  };
  return run_stack(stack_, input, o);
}

const GradientFlowRecord& GradientFlowRecorder::collect(int64_t step, double loss) {
  RESIN_CHECK(pending_ != nullptr, "GradientFlowRecorder::collect: call forward (and backward) first");
  GradientFlowRecord r;
  r.step = step;
  r.loss = loss;
  r.output_grad_norms = *pending_;
  for (const auto& [name, p] : model_->named_parameters())
    r.param_grad_norms.emplace_back(name, p.grad().defined() ? frobenius_norm(p.grad()) : kNaN);
  pending_.reset();
  history_.push_back(std::move(r));
  return history_.back();
}

std::vector<ActivationStats> activation_stats(const BlockStack& s, const Tensor& input, const RunOptions& o) {
  NoGradGuard ng;
  std::vector<ActivationStats> out;
  RunOptions ro = o;
  ro.run_head = false;
  ro.on_output = [&](size_t p, const Tensor& x) {
    ActivationStats a;
    if (p == 0)
      a.position = "stem";
    else
      a.position = s.blocks[o.order.empty() ? p - 1 : o.order[p - 1]].first;
    const auto v = x.to_vector();
    double sum = 0, sq = 0;
    int64_t zeros = 0;
    for (double e : v) {
      sum += e;
      sq += e * e;
      a.max_abs = std::max(a.max_abs, std::abs(e));
      zeros += e == 0.0;
    }
    const double n = static_cast<double>(v.size());
    if (n > 0) {
      a.mean = sum / n;
      a.rms = std::sqrt(sq / n);
      a.std = std::sqrt(std::max(0.0, sq / n - a.mean * a.mean));
      a.zero_fraction = static_cast<double>(zeros) / n;
    }
    out.push_back(a);
  };
  run_stack(s, input, ro);
  return out;
}

int64_t weight_count(const nn::Module& m) {
  int64_t n = 0;
  for (const auto& [_, p] : m.named_parameters())
    if (p.dim() >= 2) n += p.numel();
  return n;
}

std::vector<CostRow> cost_table(const BlockStack& s, const Tensor& example) {
  NoGradGuard ng;
  std::vector<CostRow> rows;
  auto run = [&](const NamedModule& nm, const Tensor& x) {
    // Eval mode (restored after): MACs do not depend on the mode, and BN running statistics stay.
    nn::Module& m = *nm.second;
    const bool was_training = m.is_training();
    m.eval();
    MacCounter c;
    Tensor y = m.forward(x);
    rows.push_back({nm.first, m.parameter_count(), c.macs()});
    m.train(was_training);
    return y;
  };
  Tensor h = s.prepare ? s.prepare(example) : example;
  for (const auto& m : s.stem) h = run(m, h);
  for (const auto& m : s.blocks) h = run(m, h);
  for (const auto& m : s.head) h = run(m, h);
  return rows;
}

std::vector<double> linspace(double lo, double hi, size_t n) {
  RESIN_CHECK(n >= 2 || (n == 1 && lo == hi), "linspace: need n >= 2 points, got ", n);
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = i + 1 == n ? hi : lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1);
  return v;
}

std::vector<double> grid_gradients(const std::function<Tensor(const Tensor&)>& f,
                                   const std::vector<double>& grid, DType dtype) {
  RESIN_CHECK(!grid.empty(), "grid_gradients: empty grid");
  const int64_t n = static_cast<int64_t>(grid.size());
  Tensor x = from_vector(grid, {n, 1}, {.dtype = dtype});
  x.set_requires_grad(true);
  Tensor y = f(x);
  RESIN_CHECK(y.numel() == n, "grid_gradients: f must give one value per grid point, got shape ", y.shape(),
              " for ", n, " points");
  RESIN_CHECK(y.requires_grad(), "grid_gradients: f's output does not depend on its input");
  // autograd::grad, not backward(): the parameters f uses keep their .grad untouched.
  Tensor total = sum(y);
  return autograd::grad({total}, {x}, {ones_like(total)})[0].to_vector();
}

std::vector<double> autocorrelation(const std::vector<double>& g, size_t max_lag) {
  const size_t n = g.size();
  RESIN_CHECK(max_lag < n, "autocorrelation: lag ", max_lag, " needs more than ", n, " values");
  double mean = 0;
  for (double v : g) mean += v;
  mean /= static_cast<double>(n);
  double denom = 0;
  for (double v : g) denom += (v - mean) * (v - mean);
  std::vector<double> acf(max_lag + 1, kNaN);
  if (denom == 0) return acf;
  for (size_t k = 0; k <= max_lag; ++k) {
    double s = 0;
    for (size_t i = 0; i + k < n; ++i) s += (g[i] - mean) * (g[i + k] - mean);
    acf[k] = s / denom;
  }
  return acf;
}

}  // namespace resin::lab
