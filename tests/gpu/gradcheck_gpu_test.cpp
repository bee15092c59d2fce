// Every registered gradcheck case (tests/ops/gradcheck_*.cpp, compiled into this binary too) run
// with its ops on the GPU in f64: the harness perturbs the CPU inputs, and on_device moves them to
// the GPU through Tensor::to (which autograd follows back), runs the case there and brings the
// outputs home. So forward and backward kernels of the CUDA backend are checked against finite
// differences. None is skipped: tests/ops/gradcheck_placement_test.cpp runs every case on the
// placement-check device cpu:1 in every build, so a case that builds host tensors inside its
// function fails there first (and would fail here with a device mismatch).
#include "../support/on_device.h"
#include "gpu_util.h"

namespace resin::testing {
namespace {

class GpuGradcheck : public ::testing::TestWithParam<GradcheckCase> {};

TEST_P(GpuGradcheck, MatchesFiniteDifferences) {
  RESIN_REQUIRE_GPU();
  const GradcheckCase& c = GetParam();
  GradcheckSpec spec = c.make();
  const GradcheckResult r =
      gradcheck("gpu/" + c.op + "/" + c.label, on_device(spec.fn, Device::cuda(0)), spec.inputs, spec.opts);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Ops, GpuGradcheck, ::testing::ValuesIn(gradcheck_registry()),
                         [](const ::testing::TestParamInfo<GradcheckCase>& info) { return info.param.test_name(); });

}  // namespace
}  // namespace resin::testing
