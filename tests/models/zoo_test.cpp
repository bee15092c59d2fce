#include <gtest/gtest.h>

#include "resin/models/zoo.h"
#include "resin/resin.h"

using namespace resin;

// The CIFAR numbers are the papers' (BN parameters counted); see He et al. 2015 Table 6.
TEST(Zoo, CifarParameterCounts) {
  EXPECT_EQ(models::create_model("resnet20", {})->parameter_count(), 269722);
  EXPECT_EQ(models::create_model("resnet110", {})->parameter_count(), 1727962);
}

TEST(Zoo, UnknownNameSuggests) {
  try {
    models::create_model("resnet21", {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet20"), std::string::npos) << e.what();
  }
}

TEST(Zoo, Resnet20ForwardBackwardFashionShape) {
  auto m = models::create_model("resnet20", {.in_channels = 1, .num_classes = 10});
  Tensor x = randn({2, 1, 28, 28});
  Tensor y = m->forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  sum(y).backward();
  for (auto& [n, p] : m->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << n;
    for (double v : p.grad().to_vector()) ASSERT_TRUE(std::isfinite(v)) << n;
  }
}
