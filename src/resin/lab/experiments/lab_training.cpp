#include "resin/lab/experiments/lab_training.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "resin/autograd/grad_mode.h"
#include "resin/lab/experiments/common.h"
#include "resin/nn/init.h"
#include "resin/ops/ops.h"
#include "resin/optim/adamw.h"
#include "resin/optim/sgd.h"

namespace resin::lab {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A Fisher–Yates permutation of 0..n−1 from g.
std::vector<int64_t> permutation(int64_t n, Generator& g) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[g.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

std::unique_ptr<optim::Optimizer> make_optimiser(nn::Module& model, const TrainConfig& c) {
  auto groups = optim::weight_decay_param_groups(model.named_parameters(), c.lr, c.weight_decay);
  if (c.optimiser == Optimiser::adamw)
    return std::make_unique<optim::AdamW>(std::move(groups), optim::AdamWOptions{.beta1 = c.beta1, .beta2 = c.beta2});
  return std::make_unique<optim::Sgd>(std::move(groups), optim::SgdOptions{.momentum = c.momentum});
}

}  // namespace

std::vector<int64_t> stratified_order(const Tensor& labels, uint64_t seed) {
  RESIN_CHECK(labels.dim() == 1, "stratified_order: labels must be [N], got ", labels.shape());
  const auto y = labels.values<int64_t>();
  int64_t classes = 0;
  for (int64_t v : y) {
    RESIN_CHECK(v >= 0, "stratified_order: negative label ", v);
    classes = std::max(classes, v + 1);
  }
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(classes));
  for (size_t i = 0; i < y.size(); ++i) by_class[static_cast<size_t>(y[i])].push_back(static_cast<int64_t>(i));
  Generator g(seed);
  for (auto& members : by_class) {
    const auto p = permutation(static_cast<int64_t>(members.size()), g);
    std::vector<int64_t> shuffled;
    for (int64_t i : p) shuffled.push_back(members[static_cast<size_t>(i)]);
    members = std::move(shuffled);
  }
  std::vector<int64_t> order;
  for (size_t round = 0; order.size() < y.size(); ++round)
    for (const auto& members : by_class)
      if (round < members.size()) order.push_back(members[round]);
  return order;
}

Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& idx, size_t begin, size_t len) {
  RESIN_CHECK(t.dim() >= 1 && t.is_contiguous(), "gather_rows: need a contiguous tensor, got ", t.shape());
  RESIN_CHECK(t.device().type == DeviceType::cpu, "gather_rows: the tensor must be in host memory, it is on ",
              t.device());
  RESIN_CHECK(begin + len <= idx.size(), "gather_rows: range [", begin, ", ", begin + len, ") of ", idx.size());
  Shape s = t.shape();
  const int64_t n = s[0];
  s[0] = static_cast<int64_t>(len);
  Tensor out = empty(s, {.dtype = t.dtype(), .device = t.device()});
  const size_t row = static_cast<size_t>(t.numel() / std::max<int64_t>(n, 1)) * dtype_size(t.dtype());
  const auto* src = static_cast<const char*>(t.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < len; ++i) {
    const int64_t r = idx[begin + i];
    RESIN_CHECK(r >= 0 && r < n, "gather_rows: row ", r, " out of range (", n, " rows)");
    std::memcpy(dst + i * row, src + static_cast<size_t>(r) * row, row);
  }
  return out;
}

LabTrainingData load_training_data(const Context& ctx, int64_t train_n, int64_t fit_n, int64_t test_n, bool downsample) {
  LabData train = load_fashion(ctx, true), test = load_fashion(ctx, false, test_n > 0 ? test_n : ctx.quick ? 2000 : 0);
  RESIN_CHECK(train_n > 0 && train_n <= train.x.size(0), "lab: training subset of ", train_n, " (1..",
              train.x.size(0), ")");
  const auto order = stratified_order(train.y, kSubsetSeed);
  LabTrainingData d;
  d.device = ctx.device;
  d.train_x = gather_rows(train.x, order, 0, static_cast<size_t>(train_n));
  d.train_y = gather_rows(train.y, order, 0, static_cast<size_t>(train_n));
  d.test_x = test.x, d.test_y = test.y;
  if (downsample) {
    NoGradGuard ng;
    d.train_x = avg_pool2d(d.train_x, {}).contiguous();
    d.test_x = avg_pool2d(d.test_x, {}).contiguous();
  }
  const int64_t f = std::min(train_n, fit_n);
  d.fit_x = d.train_x.narrow(0, 0, f).contiguous();
  d.fit_y = d.train_y.narrow(0, 0, f).contiguous();
  return d;
}

double lr_factor(const TrainConfig& c, int64_t step, int64_t steps_per_epoch, int64_t total_steps) {
  double f = 1.0;
  switch (c.schedule) {
    case Schedule::step:
      if (step >= total_steps / 2) f *= 0.1;
      if (step >= (3 * total_steps) / 4) f *= 0.1;
      break;
    case Schedule::constant: break;
    case Schedule::exp_epoch: f = std::pow(c.gamma, static_cast<double>(step / std::max<int64_t>(steps_per_epoch, 1))); break;
    case Schedule::inv_sqrt:
      f = std::sqrt(static_cast<double>(c.decay_start) / static_cast<double>(std::max(step + 1, c.decay_start)));
      break;
  }
  if (step < c.warmup_steps)
    f *= c.linear_warmup ? static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps) : c.warmup_factor;
  return f;
}

EvalResult evaluate(nn::Module& model, const Tensor& x, const Tensor& y, int64_t batch) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  const Device dev = model.device();
  const int64_t n = x.size(0);
  double loss_sum = 0;
  int64_t wrong = 0;
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t len = std::min(batch, n - b0);
    // The logits come home (small): the loss and the argmax are taken on the host with host labels.
    Tensor logits = model.forward(x.narrow(0, b0, len).to(dev)).to(Device::cpu());
    Tensor yb = y.narrow(0, b0, len).to(Device::cpu());
    loss_sum += cross_entropy(logits, yb, {.reduction = Reduction::sum}).item();
    const auto pred = argmax(logits, 1).values<int64_t>();
    const auto lab = yb.values<int64_t>();
    for (int64_t i = 0; i < len; ++i) wrong += pred[static_cast<size_t>(i)] != lab[static_cast<size_t>(i)];
  }
  model.train(was_training);
  return {loss_sum / static_cast<double>(n), static_cast<double>(wrong) / static_cast<double>(n)};
}

TrainResult train_classifier(nn::Module& model, const LabTrainingData& d, const TrainConfig& c) {
  RESIN_CHECK(c.epochs > 0 && c.batch > 0, "lab: train: epochs and batch must be positive");
  const int64_t n = d.train_x.size(0);
  const int64_t per_epoch = (n + c.batch - 1) / c.batch;
  const int64_t total = c.max_steps > 0 ? std::min(c.max_steps, per_epoch * c.epochs) : per_epoch * c.epochs;
  model.to(d.device);  // before the optimiser takes the parameter handles
  auto opt = make_optimiser(model, c);
  std::vector<double> base;
  for (const auto& g : opt->param_groups()) base.push_back(g.lr);
  const LossFn loss_fn = c.loss ? c.loss : [](nn::Module& m, const Tensor& x, const Tensor& y) {
    return cross_entropy(m.forward(x), y);
  };
  TrainResult res;
  model.train();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < c.epochs && step < total && !res.diverged; ++epoch) {
    Generator g(c.seed * 1000003u + static_cast<uint64_t>(epoch));
    const auto order = permutation(n, g);
    const auto t0 = Clock::now();
    double sum = 0;
    int64_t batches = 0;
    for (int64_t b = 0; b < per_epoch && step < total; ++b, ++step) {
      const double f = lr_factor(c, step, per_epoch, total);
      for (size_t i = 0; i < base.size(); ++i) opt->param_groups()[i].lr = base[i] * f;
      const size_t b0 = static_cast<size_t>(b * c.batch), len = static_cast<size_t>(std::min(c.batch, n - b * c.batch));
      Tensor loss = loss_fn(model, gather_rows(d.train_x, order, b0, len).to(d.device),
                            gather_rows(d.train_y, order, b0, len).to(d.device));
      const double v = loss.item();
      res.step_loss.push_back(v);
      if (!std::isfinite(v)) {
        res.diverged = true, res.diverged_at = step + 1;
        break;
      }
      opt->zero_grad();
      loss.backward();
      opt->step();
      sum += v, ++batches;
      if (c.on_step) c.on_step(step + 1, model);
    }
    EpochPoint p{.epoch = epoch + 1, .running_loss = batches ? sum / static_cast<double>(batches) : NAN,
                 .seconds = since(t0)};
    res.seconds += p.seconds;
    if (c.eval_each_epoch && !c.loss) {
      p.fit_loss = evaluate(model, d.fit_x, d.fit_y).loss;
      p.test_error = evaluate(model, d.test_x, d.test_y).error;
    }
    res.curve.push_back(p);
  }
  res.steps = static_cast<int64_t>(res.step_loss.size()) - (res.diverged ? 1 : 0);
  res.seconds_per_epoch = res.seconds * static_cast<double>(per_epoch) / std::max<double>(1.0, static_cast<double>(res.steps));
  if (!c.loss && c.measure) {
    const EvalResult fit = evaluate(model, d.fit_x, d.fit_y), test = evaluate(model, d.test_x, d.test_y);
    res.fit_loss = fit.loss, res.fit_error = fit.error, res.test_loss = test.loss, res.test_error = test.error;
  }
  model.train();
  return res;
}

std::string mean_sd_text(const std::vector<double>& v) {
  if (v.size() == 1) return fmt(v[0]);
  std::string each;
  for (double x : v) each += (each.empty() ? "" : ", ") + fmt(x);
  return str_cat(fmt(mean_of(v)), " ± ", fmt(std_of(v)), " (", each, ")");
}

Series curve_series(const std::string& name, const TrainResult& t, bool test_error) {
  Series s{.name = name};
  for (const EpochPoint& p : t.curve) {
    s.x.push_back(static_cast<double>(p.epoch));
    s.y.push_back(test_error ? p.test_error : (std::isnan(p.fit_loss) ? p.running_loss : p.fit_loss));
  }
  return s;
}

void he_normal_init(nn::Module& m, bool zero_bias) {
  for (auto& [name, sub] : m.named_modules()) {
    const std::string t = sub->type_name();
    if (t != "Linear" && t != "Conv2d") continue;
    for (auto& [pn, p] : sub->own_parameters()) {
      if (p.dim() >= 2) nn::init::kaiming_normal_(p, nn::init::FanMode::fan_in);
      else if (zero_bias && pn == "bias") nn::init::constant_(p, 0.0);
    }
  }
}

std::vector<double> ArmRuns::get(double TrainResult::*field) const {
  std::vector<double> v;
  for (const TrainResult& t : runs) v.push_back(t.*field);
  return v;
}

std::vector<double> ArmRuns::fit_loss() const {
  std::vector<double> v;
  for (const TrainResult& t : runs) v.push_back(t.diverged || !std::isfinite(t.fit_loss) ? INFINITY : t.fit_loss);
  return v;
}

bool ArmRuns::any_diverged() const {
  return std::any_of(runs.begin(), runs.end(), [](const TrainResult& t) { return t.diverged; });
}

Arm he_arm(std::string name, std::function<nn::ModulePtr()> build, TrainConfig config) {
  return {std::move(name), [build = std::move(build)] {
            nn::ModulePtr m = build();
            he_normal_init(*m);
            return m;
          }, std::move(config)};
}

ArmRuns train_arm(const Arm& a, const std::vector<uint64_t>& seeds, const LabTrainingData& d,
                  const std::function<void(size_t, nn::Module&, const TrainResult&)>& after) {
  ArmRuns out{.name = a.name, .seeds = seeds};
  for (size_t i = 0; i < seeds.size(); ++i) {
    manual_seed(seeds[i]);
    nn::ModulePtr m = a.make();
    out.params = m->parameter_count();
    TrainConfig c = a.config;
    c.seed = seeds[i];
    out.runs.push_back(train_classifier(*m, d, c));
    const TrainResult& t = out.runs.back();
    progress("train", str_cat(a.name, " seed ", seeds[i], ": fit loss ", fmt(t.fit_loss), ", test error ",
                              fmt(t.test_error), t.diverged ? " (diverged)" : "", ", ", fmt(t.seconds), " s"));
    if (after) after(i, *m, t);
  }
  return out;
}

bool paired_greater(const std::vector<double>& a, const std::vector<double>& b) {
  RESIN_CHECK(a.size() == b.size() && !a.empty(), "paired_greater: ", a.size(), " vs ", b.size(), " values");
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] > b[i])) return false;
  return mean_of(a) > mean_of(b);
}

std::vector<double> ratios(const std::vector<double>& a, const std::vector<double>& b) {
  RESIN_CHECK(a.size() == b.size(), "ratios: ", a.size(), " vs ", b.size(), " values");
  std::vector<double> v;
  for (size_t i = 0; i < a.size(); ++i) v.push_back(a[i] / b[i]);
  return v;
}

void add_run_table(Results& r, const std::vector<ArmRuns>& arms, const std::string& name) {
  Table& t = r.table(name, "Every run (fit = the fixed training subset, eval mode)",
                     {"arm", "seed", "params", "fit_loss", "fit_error", "test_loss", "test_error", "s_per_epoch",
                      "diverged_at_step"});
  for (const ArmRuns& a : arms)
    for (size_t i = 0; i < a.runs.size(); ++i) {
      const TrainResult& x = a.runs[i];
      t.add({a.name, fmt_int(static_cast<int64_t>(a.seeds[i])), fmt_int(a.params), fmt(x.fit_loss), fmt(x.fit_error),
             fmt(x.test_loss), fmt(x.test_error), fmt(x.seconds_per_epoch), x.diverged ? fmt_int(x.diverged_at) : ""});
    }
}

void add_curve_plot(Results& r, const std::vector<ArmRuns>& arms, const std::string& name, const std::string& title,
                    bool log_y) {
  Plot p{.title = title, .xlabel = "epoch", .ylabel = "train loss", .log_y = log_y};
  bool eval = false;
  for (const ArmRuns& a : arms)
    if (!a.runs.empty()) {
      p.series.push_back(curve_series(a.name, a.runs[0]));
      eval |= !a.runs[0].curve.empty() && !std::isnan(a.runs[0].curve[0].fit_loss);
    }
  if (!eval) p.ylabel = "running minibatch loss (train mode)";
  r.plot(name, title + " (seed " + (arms.empty() || arms[0].seeds.empty() ? "" : fmt_int(static_cast<int64_t>(arms[0].seeds[0]))) +
                   (eval ? "; eval-mode loss on the fixed training subset after each epoch)" : "; running loss)"),
         p);
}

Series step_loss_series(const std::string& name, const std::vector<double>& step_loss, size_t window, size_t stride) {
  Series s{.name = name, .style = SeriesStyle::line};
  for (size_t i = window - 1; i < step_loss.size(); i += stride) {
    double m = 0;
    for (size_t j = i + 1 - window; j <= i; ++j) m += step_loss[j];
    s.x.push_back(static_cast<double>(i + 1)), s.y.push_back(m / static_cast<double>(window));
  }
  return s;
}

void progress(const std::string& experiment, const std::string& what) {
  std::fprintf(stderr, "  [%s] %s\n", experiment.c_str(), what.c_str());
  std::fflush(stderr);
}

}  // namespace resin::lab
