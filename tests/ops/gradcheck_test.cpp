// Runs every registered gradcheck case (tests/ops/gradcheck_*.cpp) as its own test, named
// <op>__<case>, and checks that every op in backend/ops.def has at least one case.
#include "../support/gradcheck.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace resin::testing {
namespace {

const std::vector<std::string>& op_table() {
  static const std::vector<std::string> names = {
#define RESIN_OP(name, arity, kind) #name,
#include "resin/backend/ops.def"
#undef RESIN_OP
  };
  return names;
}

class Gradcheck : public ::testing::TestWithParam<GradcheckCase> {};

TEST_P(Gradcheck, MatchesFiniteDifferences) {
  const GradcheckCase& c = GetParam();
  GradcheckSpec spec = c.make();
  const GradcheckResult r = gradcheck(c.op + "/" + c.label, spec.fn, spec.inputs, spec.opts);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Ops, Gradcheck, ::testing::ValuesIn(gradcheck_registry()),
                         [](const ::testing::TestParamInfo<GradcheckCase>& info) {
                           return info.param.test_name();
                         });

TEST(GradcheckCoverage, EveryOpInTheTableHasACase) {
  std::set<std::string> covered;
  for (const auto& c : gradcheck_registry()) covered.insert(c.op);
  for (const auto& op : op_table())
    EXPECT_TRUE(covered.count(op)) << "ops.def entry '" << op << "' has no gradcheck case";
}

TEST(GradcheckCoverage, EveryCaseNamesAnOpInTheTable) {
  const std::set<std::string> ops(op_table().begin(), op_table().end());
  std::set<std::string> names;
  for (const auto& c : gradcheck_registry()) {
    EXPECT_TRUE(ops.count(c.op)) << "gradcheck case " << c.test_name() << " names an op missing from ops.def";
    EXPECT_TRUE(names.insert(c.test_name()).second) << "duplicate case " << c.test_name();
  }
}

// The harness itself must catch a wrong gradient: a node that returns twice the true gradient.
TEST(GradcheckHarness, DetectsAWrongGradient) {
  Generator g(3);
  Tensor x = leaf(rnd({3, 4}, g));
  auto wrong = [](const Inputs& in) {
    Tensor y = mul(in[0], in[0]);
    if (y.requires_grad()) y.register_hook([](const Tensor& gy) { return mul(gy, 2.0); });  // corrupts dL/dx
    return Outputs{y};
  };
  const GradcheckResult bad = gradcheck("square/doubled", wrong, {x});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.message.find("square/doubled"), std::string::npos) << bad.message;
  EXPECT_NE(bad.message.find("input 0"), std::string::npos) << bad.message;
  const GradcheckResult good =
      gradcheck("square", [](const Inputs& in) { return Outputs{mul(in[0], in[0])}; }, {x});
  EXPECT_TRUE(good.ok) << good.message;
  EXPECT_EQ(good.checked, 12);
}

TEST(GradcheckHarness, RejectsNonDeterministicFunctions) {
  Generator g(4);
  Tensor x = leaf(rnd({16}, g));
  const GradcheckResult r = gradcheck(
      "dropout/default_generator", [](const Inputs& in) { return Outputs{dropout(in[0], 0.5, true)}; }, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("not deterministic"), std::string::npos) << r.message;
}

TEST(GradcheckHarness, PerturbsStridedInputsThroughTheirStrides) {
  Generator g(5);
  Tensor base = rnd({4, 6}, g);
  Tensor t = leaf(transposed_layout(base, 0, 1));
  ASSERT_FALSE(t.is_contiguous());
  Tensor n = leaf(narrowed_layout(base, 1));
  ASSERT_FALSE(n.is_contiguous());
  EXPECT_EQ(t.to_vector(), base.to_vector());
  EXPECT_EQ(n.to_vector(), base.to_vector());
  auto f = [](const Inputs& in) { return Outputs{mul(exp(in[0]), in[1])}; };
  const GradcheckResult r = gradcheck("strided", f, {t, n});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.checked, 48);
  // Perturbation restores every value exactly.
  EXPECT_EQ(t.to_vector(), base.to_vector());
}

}  // namespace
}  // namespace resin::testing
