// clip_grad_norm against torch.nn.utils.clip_grad_norm_ (one /usr/bin/python3 process for the
// file): total norms and clipped gradients for norm orders 2, 1, 3 and inf, f32 and f64, clipping and
// not clipping, parameters without gradients, non-dense (expanded) gradients and non-finite values.
// Norm sums are accumulated in another order than torch's vector kernels, so values agree to
// rounding: 1e-13 relative in f64, 1e-6 in f32.
#include <random>

#include "oracle.h"
#include "resin/optim/optim.h"

namespace resin::optim {
namespace {

using testing::hex;
using testing::hex_list;

struct ClipCase {
  std::string name;
  DType dtype;
  double max_norm, norm_type;
  bool error_if_nonfinite = false;
  std::vector<Shape> shapes;      // one parameter each; empty Shape{} entry with has_grad false = no grad
  std::vector<bool> has_grad;
  int poison = 0;                 // 1: a NaN in gradient 0, 2: an inf in gradient 0
  bool expanded = false;          // gradient 0 is a stride-0 expansion
  std::vector<std::vector<double>> grads = {};  // generated
};

std::vector<ClipCase> make_cases() {
  std::vector<ClipCase> cases;
  const std::vector<Shape> shapes = {{8, 3}, {1, 40}, {5}, {2, 3, 4, 5}};
  for (DType dt : {DType::f64, DType::f32}) {
    const std::string s = dt == DType::f64 ? "_f64" : "_f32";
    auto add = [&](std::string name, double max_norm, double p, std::vector<bool> has = {true, true, true, true}) {
      cases.push_back({name + s, dt, max_norm, p, false, shapes, has});
    };
    add("l2_clip", 1.0, 2.0);
    add("l2_noclip", 1e3, 2.0);
    add("l1_clip", 2.5, 1.0);
    add("l3_clip", 0.7, 3.0);
    add("linf_clip", 0.3, kInfNorm);
    add("l2_some_without_grad", 0.5, 2.0, {true, false, true, false});
    cases.push_back({"l2_expanded" + s, dt, 0.75, 2.0, false, shapes, {true, true, true, true}, 0, true});
    cases.push_back({"nan" + s, dt, 1.0, 2.0, false, shapes, {true, true, true, true}, 1});
    cases.push_back({"inf" + s, dt, 1.0, 2.0, false, shapes, {true, true, true, true}, 2});
    cases.push_back({"inf_linf" + s, dt, 1.0, kInfNorm, false, shapes, {true, true, true, true}, 2});
    cases.push_back({"nan_error" + s, dt, 1.0, 2.0, true, shapes, {true, true, true, true}, 1});
  }
  std::mt19937_64 rng(99);
  std::normal_distribution<double> n(0.0, 1.0);
  for (auto& c : cases) {
    for (size_t i = 0; i < c.shapes.size(); ++i) {
      std::vector<double> v;
      for (int64_t k = 0; k < c.shapes[i].numel(); ++k) {
        // An expanded gradient repeats its first row.
        const bool repeat = c.expanded && i == 0 && k >= c.shapes[0].back();
        const double x = repeat ? v[static_cast<size_t>(k % c.shapes[0].back())] : n(rng);
        v.push_back(c.dtype == DType::f32 ? static_cast<double>(static_cast<float>(x)) : x);
      }
      c.grads.push_back(v);
    }
    if (c.poison) c.grads[0][5] = c.poison == 1 ? NAN : -INFINITY;
  }
  return cases;
}

class ClipParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cases_ = make_cases();
    std::ostringstream in;
    for (const auto& c : cases_) {
      in << "clip " << c.name << " " << (c.dtype == DType::f64 ? "f64" : "f32") << " " << hex(c.max_norm) << " "
         << hex(c.norm_type) << " " << (c.error_if_nonfinite ? 1 : 0) << "\n";
      for (size_t i = 0; i < c.shapes.size(); ++i) {
        if (c.has_grad[i]) in << "g " << testing::shape_tokens(c.shapes[i]) << hex_list(c.grads[i]) << "\n";
        else in << "nog\n";
      }
      in << "end\n";
    }
    const auto run = testing::run_oracle("clip", in.str());
    error_ = run.error;
    for (const auto& row : run.rows) {
      if (row[0] == "norm") norms_[row.at(1)] = testing::parse_hex(row.at(2));
      if (row[0] == "error") errors_.insert(row.at(1));
      if (row[0] == "grad") grads_[{row.at(1), std::stoi(row.at(2))}] = testing::parse_values(row, 3);
    }
  }
  static std::vector<ClipCase> cases_;
  static std::string error_;
  static std::map<std::string, double> norms_;
  static std::set<std::string> errors_;
  static std::map<std::pair<std::string, int>, std::vector<double>> grads_;
};
std::vector<ClipCase> ClipParity::cases_;
std::string ClipParity::error_;
std::map<std::string, double> ClipParity::norms_;
std::set<std::string> ClipParity::errors_;
std::map<std::pair<std::string, int>, std::vector<double>> ClipParity::grads_;

TEST_F(ClipParity, MatchesTorch) {
  ASSERT_TRUE(error_.empty()) << error_;
  for (const auto& c : cases_) {
    SCOPED_TRACE(c.name);
    const double rel = c.dtype == DType::f64 ? 1e-13 : 1e-6;
    std::vector<std::pair<std::string, Tensor>> named;
    std::vector<Tensor> old_grads;
    for (size_t i = 0; i < c.shapes.size(); ++i) {
      Tensor p = zeros(c.shapes[i], {.dtype = c.dtype});
      p.set_requires_grad(true);
      if (c.has_grad[i]) {
        Tensor g = from_vector(c.grads[i], c.shapes[i], {.dtype = c.dtype});
        if (c.expanded && i == 0) {
          g = g.narrow(0, 0, 1).expand(c.shapes[i]);
          ASSERT_EQ(g.stride(0), 0);
        }
        p.set_grad(g);
      }
      old_grads.push_back(p.grad());
      named.emplace_back(std::string("p").append(std::to_string(i)), p);
    }
    std::vector<std::vector<double>> old_values;
    for (const auto& g : old_grads) old_values.push_back(g.defined() ? g.to_vector() : std::vector<double>{});

    if (errors_.count(c.name)) {
      try {
        clip_grad_norm(named, c.max_norm, c.norm_type, c.error_if_nonfinite);
        ADD_FAILURE() << "torch raised, resin did not";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("non-finite gradients: p0"), std::string::npos) << e.what();
      }
      for (size_t i = 0; i < named.size(); ++i) EXPECT_TRUE(named[i].second.grad().is_same(old_grads[i]));
      continue;
    }
    ASSERT_TRUE(norms_.count(c.name)) << "no torch result";
    const double total = clip_grad_norm(named, c.max_norm, c.norm_type, c.error_if_nonfinite);
    EXPECT_TRUE(testing::rel_close({total}, {norms_.at(c.name)}, rel));
    for (size_t i = 0; i < named.size(); ++i) {
      const Tensor g = named[i].second.grad();
      ASSERT_EQ(g.defined(), c.has_grad[i]) << i;
      if (!g.defined()) continue;
      EXPECT_TRUE(testing::rel_close(g.to_vector(), grads_.at({c.name, static_cast<int>(i)}), rel)) << "grad " << i;
      // The old gradient was never written; clipping installs a new tensor.
      EXPECT_TRUE(testing::bits_equal(old_grads[i].to_vector(), old_values[i])) << "grad " << i << " was written";
      const bool clipped = !(c.max_norm / (total + 1e-6) >= 1.0);
      EXPECT_EQ(!g.is_same(old_grads[i]), clipped) << i;
      EXPECT_EQ(g.dtype(), c.dtype);
    }
  }
}

TEST(Clip, GradNormAndFiniteChecks) {
  Tensor a = zeros({3}, {.dtype = DType::f64}), b = zeros({2}, {.dtype = DType::f64}), c = zeros({2});
  a.set_grad(from_vector({3, 0, 4}, {3}, {.dtype = DType::f64}));
  b.set_grad(from_vector({0, 12}, {2}, {.dtype = DType::f64}));
  EXPECT_EQ(grad_norm({a, b, c}), 13.0);  // c has no gradient
  EXPECT_EQ(grad_norm({a, b}, 1.0), 19.0);
  EXPECT_EQ(grad_norm({a, b}, kInfNorm), 12.0);
  EXPECT_EQ(grad_norm({c}), 0.0);
  EXPECT_EQ(clip_grad_norm(std::vector<Tensor>{c}, 1.0), 0.0);
  EXPECT_THROW(grad_norm({a}, 0.0), Error);
  EXPECT_TRUE(grads_finite({a, b, c}));
  EXPECT_TRUE(nonfinite_grads({{"a", a}, {"b", b}}).empty());
  c.set_grad(from_vector({1, INFINITY}, {2}));
  b.set_grad(from_vector({NAN, 1}, {2}, {.dtype = DType::f64}));
  EXPECT_FALSE(grads_finite({a, b, c}));
  EXPECT_EQ(nonfinite_grads({{"a", a}, {"b", b}, {"c", c}}), (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(std::isnan(grad_norm({a, b, c})));
  EXPECT_THROW(clip_grad_norm(std::vector<Tensor>{a, b, c}, 1.0, 2.0, true), Error);
}

TEST(Clip, LargeGradientsUseEveryChunk) {
  // More elements than one parallel chunk: the chunked reduction must cover all of them.
  const int64_t n = (1 << 17) + 3;
  Tensor p = zeros({n}, {.dtype = DType::f64});
  p.set_grad(full({n}, 0.5, {.dtype = DType::f64}));
  EXPECT_EQ(grad_norm({p}, 1.0), 0.5 * static_cast<double>(n));
  EXPECT_DOUBLE_EQ(clip_grad_norm(std::vector<Tensor>{p}, 1.0), 0.5 * std::sqrt(static_cast<double>(n)));
  const auto g = p.grad().to_vector();
  const double want = 0.5 * (1.0 / (0.5 * std::sqrt(static_cast<double>(n)) + 1e-6));
  EXPECT_NEAR(g.front(), want, 1e-15);
  EXPECT_NEAR(g.back(), want, 1e-15);
}

}  // namespace
}  // namespace resin::optim
