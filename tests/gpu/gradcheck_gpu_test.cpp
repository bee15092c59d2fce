// Every registered gradcheck case (tests/ops/gradcheck_*.cpp, compiled into this binary too) run
// with its ops on the GPU in f64: the harness perturbs the CPU inputs, and the function moves them
// to the GPU through Tensor::to (which autograd follows back), runs the case there and brings the
// outputs home. So forward and backward kernels of the CUDA backend are checked against finite
// differences. Cases whose function builds tensors of its own on the host cannot run on another
// device as written and are skipped; a coverage test requires a GPU-runnable case for every op.
#include <map>

#include "../support/gradcheck.h"
#include "gpu_util.h"

namespace resin::testing {
namespace {

Inputs moved(const Inputs& in, Device d) {
  Inputs out;
  for (const Tensor& t : in) out.push_back(t.defined() ? t.to(d) : t);
  return out;
}

GradFn on_gpu(const GradFn& f) {
  return [f](const Inputs& in) {
    Outputs outs = f(moved(in, Device::cuda(0)));
    for (Tensor& o : outs)
      if (o.defined()) o = o.to(Device::cpu());
    return outs;
  };
}

bool mixes_devices(const std::string& m) {
  return m.find("device mismatch") != std::string::npos || m.find(" is on cpu") != std::string::npos ||
         m.find("expected every tensor on") != std::string::npos;
}

class GpuGradcheck : public ::testing::TestWithParam<GradcheckCase> {};

TEST_P(GpuGradcheck, MatchesFiniteDifferences) {
  RESIN_REQUIRE_GPU();
  const GradcheckCase& c = GetParam();
  GradcheckSpec spec = c.make();
  try {
    (void)on_gpu(spec.fn)(spec.inputs);
  } catch (const Error& e) {
    if (mixes_devices(e.what())) GTEST_SKIP() << "case builds host tensors inside its function: " << e.what();
    throw;
  }
  const GradcheckResult r = gradcheck("gpu/" + c.op + "/" + c.label, on_gpu(spec.fn), spec.inputs, spec.opts);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Ops, GpuGradcheck, ::testing::ValuesIn(gradcheck_registry()),
                         [](const ::testing::TestParamInfo<GradcheckCase>& info) { return info.param.test_name(); });

TEST(GpuGradcheckCoverage, EveryOpHasACaseThatRunsOnTheGpu) {
  RESIN_REQUIRE_GPU();
  std::map<std::string, bool> runs;
#define RESIN_OP(name, arity, kind) runs[#name] = false;
#include "resin/backend/ops.def"
#undef RESIN_OP
  for (const auto& c : gradcheck_registry()) {
    if (runs[c.op]) continue;
    GradcheckSpec spec = c.make();
    try {
      (void)on_gpu(spec.fn)(spec.inputs);
      runs[c.op] = true;
    } catch (const Error&) {
    }
  }
  for (const auto& [op, ok] : runs) EXPECT_TRUE(ok) << "no gradcheck case of '" << op << "' runs on the GPU";
}

}  // namespace
}  // namespace resin::testing
