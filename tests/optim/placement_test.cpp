// Optimizers, clipping and loss scaling on a device other than the CPU. The placement-check device
// cpu:1 (core/device.h) computes on the CPU's kernels but refuses to mix with cpu tensors, so these
// run on any machine: parameters there must keep their state there, give the bit-identical results
// of the same run on the CPU, and load state saved from a CPU run (as a checkpoint holds it).
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "resin/optim/clip.h"
#include "resin/optim/optim.h"
#include "resin/resin.h"

namespace resin {
namespace {

const Device kDev = Device::placement_check();

struct Params {
  std::vector<std::pair<std::string, Tensor>> named;
  std::vector<Tensor> list() const {
    std::vector<Tensor> v;
    for (const auto& [n, p] : named) v.push_back(p);
    return v;
  }
};

// Two parameters (a channels-last 4-D one among them) with fixed values, on `d`.
Params make_params(Device d) {
  Generator g(5);
  Tensor w = randn({3, 2, 2, 2}, {}, &g).contiguous(MemoryFormat::channels_last).to(d).detach();
  Tensor b = randn({3}, {}, &g).to(d).detach();
  w.set_requires_grad(true), b.set_requires_grad(true);
  return {{{"w", w}, {"b", b}}};
}

// Three steps of a made-up loss through `make`'s optimizer, with clipping and a loss scaler.
std::vector<std::vector<double>> run(
    Device d, const std::function<std::unique_ptr<optim::Optimizer>(const Params&)>& make,
    std::map<std::string, Tensor>* state = nullptr) {
  Params p = make_params(d);
  auto opt = make(p);
  optim::LossScaler scaler({.init_scale = 1024.0});
  for (int step = 0; step < 3; ++step) {
    Tensor loss =
        add(sum(mul(p.named[0].second, p.named[0].second)), sum(mul(p.named[1].second, 3.0 + step)));
    EXPECT_EQ(loss.device(), d);
    scaler.scale(loss).backward();
    EXPECT_TRUE(scaler.unscale(p.named));
    optim::clip_grad_norm(p.list(), 2.0);
    opt->step();
    scaler.update();
    opt->zero_grad();
  }
  if (state) *state = opt->state_dict();
  std::vector<std::vector<double>> out;
  for (const auto& [n, t] : p.named) {
    EXPECT_EQ(t.device(), d) << n;
    out.push_back(t.to_vector());
  }
  return out;
}

TEST(OptimPlacement, StepsOnAnotherDeviceMatchTheCpuBitForBit) {
  const std::vector<std::pair<const char*, std::function<std::unique_ptr<optim::Optimizer>(const Params&)>>>
      makers = {
          {"sgd",
           [](const Params& p) {
             return std::make_unique<optim::Sgd>(p.list(), 0.1, 1e-3,
                                                 optim::SgdOptions{.momentum = 0.9, .nesterov = true});
           }},
          {"adamw",
           [](const Params& p) {
             return std::make_unique<optim::AdamW>(p.list(), 0.01, 0.05,
                                                   optim::AdamWOptions{.amsgrad = true});
           }},
      };
  for (const auto& [name, make] : makers) {
    SCOPED_TRACE(name);
    EXPECT_EQ(run(kDev, make), run(Device::cpu(), make));
  }
}

TEST(OptimPlacement, StateSavedOnTheCpuLoadsOntoTheParametersDevice) {
  auto make = [](const Params& p) {
    return std::make_unique<optim::AdamW>(p.list(), 0.01, 0.05, optim::AdamWOptions{});
  };
  std::map<std::string, Tensor> saved;
  run(Device::cpu(), make, &saved);
  Params p = make_params(kDev);
  auto opt = make(p);
  opt->load_state_dict(saved);
  // One more step must run with the loaded moments, which live where the parameters do.
  add(sum(p.named[0].second), sum(p.named[1].second)).backward();
  opt->step();
  for (const auto& [n, t] : p.named) EXPECT_EQ(t.device(), kDev) << n;
  const auto after = opt->state_dict();
  EXPECT_EQ(after.size(), saved.size());
  for (const char* moment : {"state.0.0.exp_avg", "state.0.1.exp_avg_sq"})
    EXPECT_EQ(after.at(moment).device(), kDev) << moment;
}

}  // namespace
}  // namespace resin

namespace resin {
namespace {

// Off the CPU, norms are reduced on the device in chunks of 4M elements: a gradient of two chunks
// and a bit, its largest value in the last one, gives the CPU's norms of every order.
TEST(OptimPlacement, NormsOfALargeGradientMatchTheCpu) {
  Generator g(8);
  Tensor grad = randn({(int64_t{1} << 23) + 5}, {}, &g);
  grad.data<float>()[grad.numel() - 2] = 40.0f;
  for (const double order : {2.0, 1.0, 3.0, optim::kInfNorm}) {
    std::vector<double> norms;
    for (const Device d : {Device::cpu(), kDev}) {
      Tensor p = zeros({grad.numel()}, {.device = d}).set_requires_grad(true);
      p.set_grad(grad.to(d));
      norms.push_back(optim::grad_norm({p}, order));
    }
    EXPECT_NEAR(norms[1], norms[0], 1e-6 * norms[0])
        << "order " << order;  // f32 totals: their last bit may differ
  }
}

}  // namespace
}  // namespace resin
