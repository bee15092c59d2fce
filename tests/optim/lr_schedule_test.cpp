// LR schedules against torch.optim.lr_scheduler (MultiStepLR, CosineAnnealingLR, LinearLR,
// SequentialLR) over many steps, two param groups with different base lrs, one /usr/bin/python3
// process for the whole file. torch steps its schedulers recursively (chainable form) while resin
// evaluates the closed forms, so values agree to rounding: within 1e-12 relative.
#include <cmath>
#include <memory>

#include "oracle.h"
#include "resin/optim/optim.h"

namespace resin::optim {
namespace {

using testing::hex;

constexpr double kRel = 1e-12;
const std::vector<double> kBaseLrs = {0.1, 0.02};

struct SchedCase {
  std::string name;
  int steps;
  std::string torch_expr;  // builds the scheduler of `opt`
  LrSchedulePtr ours;
};

std::vector<SchedCase> make_cases() {
  auto multistep = [](std::vector<int64_t> m, double g) { return std::make_shared<MultiStepLr>(std::move(m), g); };
  auto cosine = [](int64_t t, double eta) { return std::make_shared<CosineAnnealingLr>(t, eta); };
  auto linear = [](double s, double e, int64_t n) { return std::make_shared<LinearLr>(s, e, n); };
  return {
      {"multistep", 100, "MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.1)", multistep({30, 60, 80}, 0.1)},
      // Epoch milestones {3, 6, 8} expressed in iterations (50 per epoch).
      {"multistep_iters", 500, "MultiStepLR(opt, milestones=[150, 300, 400], gamma=0.2)",
       multistep(epochs_to_iterations({3, 6, 8}, 50), 0.2)},
      {"multistep_repeated", 40, "MultiStepLR(opt, milestones=[20, 10, 10], gamma=0.5)", multistep({20, 10, 10}, 0.5)},
      {"cosine", 130, "CosineAnnealingLR(opt, T_max=50, eta_min=1e-4)", cosine(50, 1e-4)},
      {"cosine_long", 1001, "CosineAnnealingLR(opt, T_max=1000)", cosine(1000, 0.0)},
      {"linear_warmup", 30, "LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=10)", linear(0.01, 1.0, 10)},
      {"linear_down", 40, "LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=20)", linear(1.0, 0.1, 20)},
      {"warmup_cosine", 300,
       "SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=5), CosineAnnealingLR(opt, T_max=295)], "
       "milestones=[5])",
       warmup_then(5, 0.1, cosine(295, 0.0))},
      {"warmup_multistep", 40,
       "SequentialLR(opt, [LinearLR(opt, start_factor=0.25, total_iters=8), MultiStepLR(opt, [10, 20], 0.1)], "
       "milestones=[8])",
       warmup_then(8, 0.25, multistep({10, 20}, 0.1))},
      {"sequential3", 45,
       "SequentialLR(opt, [LinearLR(opt, start_factor=0.5, total_iters=4), CosineAnnealingLR(opt, T_max=10, "
       "eta_min=0.001), MultiStepLR(opt, [5], 0.5)], milestones=[4, 14])",
       std::make_shared<SequentialLr>(
           std::vector<LrSchedulePtr>{linear(0.5, 1.0, 4), cosine(10, 0.001), multistep({5}, 0.5)},
           std::vector<int64_t>{4, 14})},
      // Per-epoch torch schedule; resin evaluates it per iteration through PerEpochLr (checked below).
      {"per_epoch", 9, "MultiStepLR(opt, milestones=[3, 6], gamma=0.1)", multistep({3, 6}, 0.1)},
  };
}

class LrScheduleParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cases_ = make_cases();
    std::ostringstream in;
    for (const auto& c : cases_)
      in << "sched " << c.name << " " << c.steps << " " << hex(kBaseLrs[0]) << "," << hex(kBaseLrs[1]) << " "
         << c.torch_expr << "\n";
    const auto run = testing::run_oracle("schedules", in.str());
    error_ = run.error;
    for (const auto& row : run.rows)
      if (row[0] == "lr") expected_[{row.at(1), std::stoi(row.at(2))}] = testing::parse_values(row, 3);
  }
  const std::vector<double>& expected(const std::string& name, int step) {
    auto it = expected_.find({name, step});
    if (it == expected_.end()) throw std::runtime_error("no torch value for " + name + " step " + std::to_string(step));
    return it->second;
  }
  static std::vector<SchedCase> cases_;
  static std::map<std::pair<std::string, int>, std::vector<double>> expected_;
  static std::string error_;
};
std::vector<SchedCase> LrScheduleParity::cases_;
std::map<std::pair<std::string, int>, std::vector<double>> LrScheduleParity::expected_;
std::string LrScheduleParity::error_;

// Drives each schedule through an LrScheduler bound to a two-group optimizer, as a trainer does.
TEST_F(LrScheduleParity, MatchesTorchSchedulers) {
  ASSERT_TRUE(error_.empty()) << error_;
  double worst = 0;
  for (const auto& c : cases_) {
    SCOPED_TRACE(c.name + ": " + c.ours->str());
    Tensor a = zeros({1}), b = zeros({1});
    Sgd opt({ParamGroup{.params = {a}, .lr = kBaseLrs[0]}, ParamGroup{.params = {b}, .lr = kBaseLrs[1]}});
    LrScheduler sched(opt, c.ours);
    for (int s = 0; s < c.steps; ++s) {
      if (s > 0) sched.step();
      ASSERT_EQ(sched.current_step(), s);
      ASSERT_TRUE(testing::rel_close(sched.current_lrs(), expected(c.name, s), kRel)) << "step " << s;
      for (size_t g = 0; g < 2; ++g) {
        const double want = expected(c.name, s)[g];
        worst = std::max(worst, std::abs(sched.current_lrs()[g] - want) / std::abs(want));
      }
    }
  }
  std::cout << "[ info ] largest relative difference to torch's chained values: " << worst << "\n";
}

// The closed forms agree with torch's recursive values to far better than kRel; make sure the
// comparison is not vacuous by checking that the schedules actually moved.
TEST_F(LrScheduleParity, SchedulesChangeTheLr) {
  ASSERT_TRUE(error_.empty()) << error_;
  for (const auto& c : cases_) {
    double lo = 1e9, hi = 0;
    for (int s = 0; s < c.steps; ++s) {
      lo = std::min(lo, expected(c.name, s)[0]);
      hi = std::max(hi, expected(c.name, s)[0]);
    }
    EXPECT_LT(lo * 1.5, hi) << c.name;
  }
}

TEST_F(LrScheduleParity, PerEpochSemanticsWhenSteppedPerIteration) {
  ASSERT_TRUE(error_.empty()) << error_;
  const int64_t ipe = 7;
  const auto& c = cases_.back();
  ASSERT_EQ(c.name, "per_epoch");
  PerEpochLr per_iter(c.ours, ipe);
  for (int64_t it = 0; it < c.steps * ipe; ++it)
    ASSERT_DOUBLE_EQ(per_iter.lr_at(it, kBaseLrs[1]), expected(c.name, static_cast<int>(it / ipe))[1]) << it;
}

TEST(LrSchedule, SchedulerStateRoundTrip) {
  Tensor a = zeros({1});
  Sgd opt({a}, 0.5);
  auto schedule = warmup_then(10, 0.1, std::make_shared<CosineAnnealingLr>(90));
  LrScheduler s1(opt, schedule);
  for (int i = 0; i < 37; ++i) s1.step();
  const auto lr37 = opt.param_groups()[0].lr;
  const auto state = s1.state_dict();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state.at("step").item(), 37);

  // A fresh optimizer whose lr was already changed still scales from initial_lr once it is restored.
  Sgd opt2({a.detach()}, 123.0);
  opt2.load_state_dict(opt.state_dict());
  LrScheduler s2(opt2, schedule);
  s2.load_state_dict(state);
  EXPECT_EQ(s2.current_step(), 37);
  // Damaged states: steps that are not whole numbers in [0, 2^63) are errors, not casts.
  for (double bad : {-1.0, 0.5, 1e19, std::nan("")})
    EXPECT_THROW(s2.load_state_dict({{"step", scalar_f64(bad)}}), Error) << bad;
  EXPECT_EQ(s2.current_step(), 37);
  EXPECT_EQ(opt2.param_groups()[0].lr, lr37);
  EXPECT_EQ(*opt2.param_groups()[0].initial_lr, 0.5);
  s1.step();
  s2.step();
  EXPECT_EQ(opt2.param_groups()[0].lr, opt.param_groups()[0].lr);

  EXPECT_THROW(s2.load_state_dict({}), Error);
  EXPECT_THROW(s2.load_state_dict({{"step", scalar_i64(1)}, {"extra", scalar_i64(2)}}), Error);
}

TEST(LrSchedule, ArgumentChecks) {
  EXPECT_THROW(CosineAnnealingLr(0), Error);
  EXPECT_THROW(LinearLr(1.5, 1.0, 5), Error);
  EXPECT_THROW(LinearLr(0.1, 1.0, 0), Error);
  EXPECT_THROW(SequentialLr({std::make_shared<ConstantLr>()}, {3}), Error);
  EXPECT_THROW(PerEpochLr(std::make_shared<ConstantLr>(), 0), Error);
  EXPECT_THROW(MultiStepLr({1}).lr_at(-1, 0.1), Error);
  EXPECT_EQ(warmup_then(0, 0.1, std::make_shared<ConstantLr>())->str(), "ConstantLr");
}

}  // namespace
}  // namespace resin::optim
