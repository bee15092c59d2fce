// SGD and AdamW against torch.optim on a fixed sequence of gradients: parameters after every step
// (so one step and many) are bit-identical in f64 and within 1e-6 relative in f32. Cases cover
// plain SGD, momentum, dampening, Nesterov, weight decay, AdamW with and without amsgrad, several
// param groups with different lr/wd, parameters that miss their gradient on some steps (lazy state,
// per-parameter AdamW step counts) and a channels-last 4-D parameter with a contiguous gradient.
// The gradients are generated here and shipped to ONE /usr/bin/python3 process as hex floats.
#include <memory>
#include <random>
#include <set>
#include <tuple>

#include "oracle.h"
#include "resin/optim/optim.h"

namespace resin::optim {
namespace {

using testing::bits_equal;
using testing::hex;
using testing::hex_list;
using testing::rel_close;

using Key = std::tuple<int, int, int>;  // step, group, index

struct GroupSpec {
  double lr, wd;
  std::vector<Shape> shapes;
};

struct Case {
  std::string name, kind;  // kind: sgd | adamw
  DType dtype;
  int steps;
  SgdOptions sgd;
  AdamWOptions adam;
  std::vector<GroupSpec> groups;
  std::set<Key> missing;  // (step, group, index) without a gradient
  // generated
  std::vector<std::vector<std::vector<double>>> init;  // [group][index]
  std::map<Key, std::vector<double>> grads;
};

const std::vector<Shape> kShapes = {{5, 7}, {13}, {2, 3, 3, 3}};

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  const std::set<Key> missing = {{0, 0, 1}, {4, 0, 1}, {1, 1, 2}, {2, 1, 2}, {9, 0, 0}};
  for (DType dt : {DType::f64, DType::f32}) {
    const std::string sfx = dt == DType::f64 ? "_f64" : "_f32";
    auto sgd = [&](std::string name, SgdOptions o, std::vector<GroupSpec> g, std::set<Key> miss = {}) {
      cases.push_back({name + sfx, "sgd", dt, 25, o, {}, std::move(g), std::move(miss), {}, {}});
    };
    auto adamw = [&](std::string name, AdamWOptions o, std::vector<GroupSpec> g, std::set<Key> miss = {}) {
      cases.push_back({name + sfx, "adamw", dt, 30, {}, o, std::move(g), std::move(miss), {}, {}});
    };
    sgd("sgd_plain", {}, {{0.1, 0.0, kShapes}});
    sgd("sgd_momentum", {.momentum = 0.9}, {{0.05, 0.0, kShapes}});
    sgd("sgd_dampening", {.momentum = 0.9, .dampening = 0.3}, {{0.05, 0.0, kShapes}});
    sgd("sgd_nesterov", {.momentum = 0.9, .nesterov = true}, {{0.05, 0.0, kShapes}});
    sgd("sgd_weight_decay", {}, {{0.1, 0.01, kShapes}});
    sgd("sgd_momentum_wd", {.momentum = 0.9}, {{0.1, 1e-4, kShapes}});
    sgd("sgd_nesterov_wd", {.momentum = 0.875, .nesterov = true}, {{0.03, 5e-3, kShapes}});
    sgd("sgd_groups", {.momentum = 0.9, .dampening = 0.1},
        {{0.1, 0.01, kShapes}, {0.0123, 0.0, kShapes}, {0.3, 0.5, {{7}}}}, missing);
    adamw("adamw_default", {}, {{1e-3, 1e-2, kShapes}});
    adamw("adamw_big_lr", {}, {{0.05, 0.1, kShapes}});
    adamw("adamw_amsgrad", {.amsgrad = true}, {{0.01, 1e-2, kShapes}});
    adamw("adamw_groups", {.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6},
          {{3e-3, 0.05, kShapes}, {1e-3, 0.0, kShapes}}, missing);
    adamw("adamw_groups_amsgrad", {.beta1 = 0.85, .beta2 = 0.995, .eps = 1e-7, .amsgrad = true},
          {{3e-3, 0.05, kShapes}, {0.02, 0.0, kShapes}}, missing);
  }
  // Values with full mantissas (rounding matters), in the case's dtype. Gradient magnitudes vary
  // over the steps (and shrink) so that amsgrad's maximum differs from the running average.
  std::mt19937_64 rng(20240611);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& c : cases) {
    auto draw = [&](double scale) {
      const double v = u(rng) * scale;
      return c.dtype == DType::f32 ? static_cast<double>(static_cast<float>(v)) : v;
    };
    c.init.resize(c.groups.size());
    for (size_t g = 0; g < c.groups.size(); ++g)
      for (const auto& s : c.groups[g].shapes) {
        std::vector<double> v;
        for (int64_t k = 0; k < s.numel(); ++k) v.push_back(draw(1.0));
        c.init[g].push_back(v);
      }
    for (int step = 0; step < c.steps; ++step) {
      const double scale = (1.0 + static_cast<double>(step % 3)) / (1.0 + 0.15 * step);
      for (size_t g = 0; g < c.groups.size(); ++g)
        for (size_t i = 0; i < c.groups[g].shapes.size(); ++i) {
          const Key key{step, static_cast<int>(g), static_cast<int>(i)};
          if (c.missing.count(key)) continue;
          std::vector<double> v;
          for (int64_t k = 0; k < c.groups[g].shapes[i].numel(); ++k) v.push_back(draw(scale));
          c.grads[key] = v;
        }
    }
  }
  return cases;
}

std::string oracle_input(const std::vector<Case>& cases) {
  std::ostringstream os;
  for (const auto& c : cases) {
    os << "case " << c.name << " " << c.kind << " " << (c.dtype == DType::f64 ? "f64" : "f32") << " " << c.steps;
    if (c.kind == "sgd") {
      os << " momentum=" << hex(c.sgd.momentum) << " dampening=" << hex(c.sgd.dampening)
         << " nesterov=" << (c.sgd.nesterov ? 1 : 0);
    } else {
      os << " beta1=" << hex(c.adam.beta1) << " beta2=" << hex(c.adam.beta2) << " eps=" << hex(c.adam.eps)
         << " amsgrad=" << (c.adam.amsgrad ? 1 : 0);
    }
    os << "\n";
    for (size_t g = 0; g < c.groups.size(); ++g) {
      os << "group " << hex(c.groups[g].lr) << " " << hex(c.groups[g].wd) << "\n";
      for (size_t i = 0; i < c.groups[g].shapes.size(); ++i)
        os << "param " << testing::shape_tokens(c.groups[g].shapes[i]) << hex_list(c.init[g][i]) << "\n";
    }
    for (const auto& [key, v] : c.grads)
      os << "grad " << std::get<0>(key) << " " << std::get<1>(key) << " " << std::get<2>(key) << hex_list(v) << "\n";
    os << "end\n";
  }
  return os.str();
}

class OptimParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cases_ = make_cases();
    const auto run = testing::run_oracle("optimizers", oracle_input(cases_));
    error_ = run.error;
    for (const auto& row : run.rows) {
      if (row[0] == "fma") fma_ = row.at(1);
      if (row[0] != "result") continue;
      expected_[{row.at(1), std::stoi(row.at(2)), std::stoi(row.at(3)), std::stoi(row.at(4))}] =
          testing::parse_values(row, 5);
    }
    if (error_.empty() && fma_ != "1") {
      error_ = "this torch's CPU add(alpha=) kernel is not a fused multiply-add (probe: '" + fma_ +
               "'); resin mirrors the AVX2/AVX-512 kernels, so bit-exact comparison needs such a CPU";
    }
  }

  // Runs the case in resin and compares after every step; f64 bit for bit, f32 within 1e-6.
  void check(const Case& c) {
    SCOPED_TRACE(c.name);
    std::vector<ParamGroup> groups;
    for (size_t g = 0; g < c.groups.size(); ++g) {
      ParamGroup pg{.lr = c.groups[g].lr, .weight_decay = c.groups[g].wd};
      for (size_t i = 0; i < c.groups[g].shapes.size(); ++i) {
        Tensor p = from_vector(c.init[g][i], c.groups[g].shapes[i], {.dtype = c.dtype});
        // 4-D parameters live channels-last while their gradients come contiguous.
        if (p.dim() == 4) p = p.contiguous(MemoryFormat::channels_last);
        p.set_requires_grad(true);
        pg.params.push_back(p);
      }
      groups.push_back(std::move(pg));
    }
    std::unique_ptr<Optimizer> opt;
    if (c.kind == "sgd") opt = std::make_unique<Sgd>(groups, c.sgd);
    else opt = std::make_unique<AdamW>(groups, c.adam);
    for (int step = 0; step < c.steps; ++step) {
      std::vector<std::pair<Tensor, std::vector<double>>> given;
      for (size_t g = 0; g < groups.size(); ++g)
        for (size_t i = 0; i < groups[g].params.size(); ++i) {
          const Tensor& p = groups[g].params[i];
          auto it = c.grads.find({step, static_cast<int>(g), static_cast<int>(i)});
          if (it == c.grads.end()) {
            p.zero_grad();
            continue;
          }
          p.set_grad(from_vector(it->second, p.shape(), {.dtype = c.dtype}));
          given.emplace_back(p.grad(), it->second);
        }
      opt->step();
      for (const auto& [grad, values] : given) ASSERT_EQ(grad.to_vector(), values) << "a gradient was written";
      for (size_t g = 0; g < groups.size(); ++g)
        for (size_t i = 0; i < groups[g].params.size(); ++i) {
          auto it = expected_.find({c.name, step, static_cast<int>(g), static_cast<int>(i)});
          ASSERT_NE(it, expected_.end()) << "no torch result for step " << step;
          const auto got = groups[g].params[i].to_vector();
          if (c.dtype == DType::f64) {
            ASSERT_TRUE(bits_equal(got, it->second)) << "step " << step << ", group " << g << ", param " << i;
          } else {
            ASSERT_TRUE(rel_close(got, it->second, 1e-6)) << "step " << step << ", group " << g << ", param " << i;
            for (size_t k = 0; k < got.size(); ++k) f32_exact_ += got[k] == it->second[k], f32_total_ += 1;
          }
        }
    }
  }

  void check_all(const std::string& kind, DType dt) {
    ASSERT_TRUE(error_.empty()) << error_;
    int n = 0;
    for (const auto& c : cases_)
      if (c.kind == kind && c.dtype == dt) check(c), ++n;
    EXPECT_GT(n, 0);
  }

  static std::vector<Case> cases_;
  static std::map<std::tuple<std::string, int, int, int>, std::vector<double>> expected_;
  static std::string error_, fma_;
  static inline int64_t f32_exact_ = 0, f32_total_ = 0;
};

std::vector<Case> OptimParity::cases_;
std::map<std::tuple<std::string, int, int, int>, std::vector<double>> OptimParity::expected_;
std::string OptimParity::error_, OptimParity::fma_;

TEST_F(OptimParity, SgdF64BitExact) { check_all("sgd", DType::f64); }
TEST_F(OptimParity, SgdF32) { check_all("sgd", DType::f32); }
TEST_F(OptimParity, AdamWF64BitExact) { check_all("adamw", DType::f64); }
TEST_F(OptimParity, AdamWF32) {
  check_all("adamw", DType::f32);
  // Informational: how many f32 values were bit-identical as well.
  std::cout << "[ info ] f32 values bit-identical to torch: " << f32_exact_ << " / " << f32_total_ << "\n";
}

}  // namespace
}  // namespace resin::optim
