// A gradcheck function run on another device: the harness perturbs host inputs, the wrapper moves
// them to `d` through Tensor::to (which autograd follows back), runs the case there and brings the
// outputs home. Shared by the GPU gradchecks (tests/gpu, cuda:0) and the placement check that runs
// every case on cpu:1 in every build (tests/ops), which pins the cases that cannot move.
#pragma once
#include <string>

#include "gradcheck.h"

namespace resin::testing {

inline GradFn on_device(const GradFn& f, Device d) {
  return [f, d](const Inputs& in) {
    Inputs moved;
    for (const Tensor& t : in) moved.push_back(t.defined() ? t.to(d) : t);
    Outputs outs = f(moved);
    for (Tensor& o : outs)
      if (o.defined()) o = o.to(Device::cpu());
    return outs;
  };
}

// Whether an error is an op refusing tensors on two devices.
inline bool mixes_devices(const std::string& m) {
  return m.find("device mismatch") != std::string::npos || m.find(" is on cpu") != std::string::npos ||
         m.find("but the input is on") != std::string::npos ||
         m.find("expected every tensor on") != std::string::npos;
}

}  // namespace resin::testing
