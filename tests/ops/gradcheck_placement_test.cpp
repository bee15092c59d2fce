// Every registered gradcheck case with its inputs on the placement-check device cpu:1 (core/device.h):
// the device plumbing tests/gpu/gradcheck_gpu_test.cpp relies on, checked in every build. A case
// whose function builds tensors on the host cannot run on another device as written and fails here
// (build them on the inputs' device); today every case moves, so the GPU gradchecks skip none.
#include <gtest/gtest.h>

#include <set>

#include "../support/on_device.h"

namespace resin::testing {
namespace {

const Device kDev = Device::placement_check();

TEST(GradcheckPlacement, EveryCaseRunsOnAnotherDevice) {
  ASSERT_FALSE(gradcheck_registry().empty());
  std::set<std::string> ops;
  for (const auto& c : gradcheck_registry()) {
    GradcheckSpec spec = c.make();
    try {
      const Outputs outs = on_device(spec.fn, kDev)(spec.inputs);
      EXPECT_FALSE(outs.empty()) << c.test_name();
      ops.insert(c.op);
    } catch (const Error& e) {
      ADD_FAILURE() << c.test_name() << (mixes_devices(e.what()) ? " builds host tensors: " : ": ")
                    << e.what();
    }
  }
  // Every op of the table has a case that moves (the GPU gradchecks cover each op).
#define RESIN_OP(name, arity, kind) \
  EXPECT_TRUE(ops.count(#name)) << "no gradcheck case of '" #name "' runs on another device";
#include "resin/backend/ops.def"
#undef RESIN_OP
}

// A gradient check through the move itself on a few cases: the values and gradients on cpu:1 equal
// the CPU's (the same kernels), so finite differences hold there too.
TEST(GradcheckPlacement, GradientsFlowBackThroughTheMove) {
  int checked = 0;
  for (const auto& c : gradcheck_registry()) {
    if (checked >= 12) continue;
    GradcheckSpec spec = c.make();
    const GradcheckResult r =
        gradcheck("cpu1/" + c.test_name(), on_device(spec.fn, kDev), spec.inputs, spec.opts);
    EXPECT_TRUE(r.ok) << c.test_name() << ": " << r.message;
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

}  // namespace
}  // namespace resin::testing
