#include <gtest/gtest.h>

#include "resin/resin.h"

using namespace resin;

TEST(Smoke, AddBackward) {
  Tensor a = from_vector({1, 2, 3}, {3}, {.dtype = DType::f64});
  a.set_requires_grad(true);
  Tensor y = sum(mul(a, a));
  y.backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{2, 4, 6}));
}
