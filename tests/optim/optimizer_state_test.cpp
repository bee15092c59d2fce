// Optimizer state serialisation (exact resume), load errors, argument checks, param-group helper.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>

#include "resin/nn/layers.h"
#include "resin/optim/optim.h"
#include "resin/resin.h"

namespace resin::optim {
namespace {

// Deterministic gradient for (step, parameter, element), identical in every run.
double grad_value(int step, size_t param, int64_t k) {
  return std::sin(0.37 * static_cast<double>(k) + 1.3 * step + static_cast<double>(param)) / (1.0 + 0.1 * step);
}

std::vector<Tensor> make_params(DType dt) {
  Generator gen(7);
  std::vector<Tensor> ps = {randn({4, 3, 2, 2}, {.dtype = dt}, &gen), randn({6}, {.dtype = dt}, &gen),
                            randn({3, 5}, {.dtype = dt}, &gen)};
  ps[0] = ps[0].contiguous(MemoryFormat::channels_last);
  for (auto& p : ps) p.set_requires_grad(true);
  return ps;
}

std::vector<Tensor> copy_params(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const auto& p : ps) {
    Tensor c = p.detach().clone();
    c.set_requires_grad(true);
    out.push_back(c);
  }
  return out;
}

void set_grads(const std::vector<Tensor>& ps, int step) {
  for (size_t i = 0; i < ps.size(); ++i) {
    // Parameter 1 has no gradient on step 0: its state starts one step later.
    if (i == 1 && step == 0) {
      ps[i].zero_grad();
      continue;
    }
    std::vector<double> v;
    for (int64_t k = 0; k < ps[i].numel(); ++k) v.push_back(grad_value(step, i, k));
    ps[i].set_grad(from_vector(v, ps[i].shape(), {.dtype = ps[i].dtype()}));
  }
}

std::vector<ParamGroup> two_groups(const std::vector<Tensor>& ps) {
  return {ParamGroup{.params = {ps[0], ps[1]}, .lr = 0.05, .weight_decay = 0.01},
          ParamGroup{.params = {ps[2]}, .lr = 0.02, .weight_decay = 0.0}};
}

using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>;

// Optimizer A runs 5 steps; B starts from A's parameters and state after 3 steps and runs steps
// 4 and 5: the parameters must end identical, bit for bit, and so must the state.
void check_resume(const Factory& make, DType dt) {
  auto pa = make_params(dt);
  auto a = make(two_groups(pa));
  LrScheduler sa(*a, warmup_then(2, 0.5, std::make_shared<CosineAnnealingLr>(10)));
  std::vector<Tensor> pb;
  std::map<std::string, Tensor> opt_state, sched_state;
  for (int step = 0; step < 5; ++step) {
    if (step == 3) {
      pb = copy_params(pa);
      opt_state = a->state_dict();
      sched_state = sa.state_dict();
    }
    set_grads(pa, step);
    a->step();
    sa.step();
  }
  // Fresh optimizer with other hyperparameters: loading restores them.
  auto groups = two_groups(pb);
  groups[0].lr = 9.0;
  groups[1].weight_decay = 3.0;
  auto b = make(groups);
  b->load_state_dict(opt_state);
  LrScheduler sb(*b, warmup_then(2, 0.5, std::make_shared<CosineAnnealingLr>(10)));
  sb.load_state_dict(sched_state);
  for (int step = 3; step < 5; ++step) {
    set_grads(pb, step);
    b->step();
    sb.step();
  }
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pb[i].to_vector(), pa[i].to_vector()) << "parameter " << i;
  const auto sa_final = a->state_dict(), sb_final = b->state_dict();
  ASSERT_EQ(sa_final.size(), sb_final.size());
  for (const auto& [key, t] : sa_final) {
    ASSERT_TRUE(sb_final.count(key)) << key;
    EXPECT_EQ(sb_final.at(key).to_vector(), t.to_vector()) << key;
  }
}

TEST(OptimState, ResumeSgdNesterov) {
  for (DType dt : {DType::f64, DType::f32})
    check_resume([](auto g) { return std::make_unique<Sgd>(g, SgdOptions{.momentum = 0.9, .nesterov = true}); }, dt);
}

TEST(OptimState, ResumeSgdDampening) {
  check_resume([](auto g) { return std::make_unique<Sgd>(g, SgdOptions{.momentum = 0.8, .dampening = 0.2}); },
               DType::f64);
}

TEST(OptimState, ResumeAdamW) {
  for (bool ams : {false, true})
    for (DType dt : {DType::f64, DType::f32})
      check_resume([ams](auto g) { return std::make_unique<AdamW>(g, AdamWOptions{.amsgrad = ams}); }, dt);
}

// Without the state B would differ: the round trip test above is not vacuous.
TEST(OptimState, FreshStateDiffers) {
  auto pa = make_params(DType::f64);
  AdamW a(two_groups(pa));
  for (int step = 0; step < 3; ++step) {
    set_grads(pa, step);
    a.step();
  }
  auto pb = copy_params(pa);
  AdamW fresh(two_groups(pb));
  set_grads(pa, 3);
  set_grads(pb, 3);
  a.step();
  fresh.step();
  EXPECT_NE(pa[2].to_vector(), pb[2].to_vector());
}

TEST(OptimState, KeysAndCopies) {
  auto ps = make_params(DType::f64);
  AdamW opt(two_groups(ps), {.amsgrad = true});
  set_grads(ps, 0);  // parameter 1 has no gradient: no state yet
  opt.step();
  const auto sd = opt.state_dict();
  for (const char* key : {"param_groups.0.num_params", "param_groups.0.lr", "param_groups.0.weight_decay",
                          "param_groups.1.num_params", "options.beta1", "options.beta2", "options.eps",
                          "options.amsgrad", "state.0.0.step", "state.0.0.exp_avg", "state.0.0.exp_avg_sq",
                          "state.0.0.max_exp_avg_sq", "state.1.0.exp_avg"})
    EXPECT_TRUE(sd.count(key)) << key;
  EXPECT_FALSE(sd.count("state.0.1.step"));
  EXPECT_FALSE(sd.count("param_groups.0.initial_lr"));
  EXPECT_EQ(sd.at("param_groups.0.num_params").item(), 2);
  EXPECT_EQ(sd.at("state.0.0.step").dtype(), DType::i64);
  EXPECT_EQ(sd.at("state.0.0.step").item(), 1);
  EXPECT_EQ(sd.at("state.0.0.exp_avg").shape(), ps[0].shape());
  EXPECT_EQ(sd.at("state.0.0.exp_avg").dtype(), DType::f64);
  // The snapshot is a copy: further steps leave it alone.
  const auto before = sd.at("state.0.0.exp_avg").to_vector();
  set_grads(ps, 1);
  opt.step();
  EXPECT_EQ(sd.at("state.0.0.exp_avg").to_vector(), before);
  EXPECT_EQ(opt.state(0, 1).at("step").item(), 1);
  EXPECT_EQ(opt.state(0, 0).at("step").item(), 2);
}

// Expects load_state_dict to throw an Error whose message contains `what`, leaving opt unchanged.
void expect_load_error(Optimizer& opt, const std::map<std::string, Tensor>& sd, const std::string& what) {
  const auto before = opt.state_dict();
  try {
    opt.load_state_dict(sd);
    ADD_FAILURE() << "no error; expected one mentioning '" << what << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
  const auto after = opt.state_dict();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [k, t] : before) EXPECT_EQ(after.at(k).to_vector(), t.to_vector()) << k;
}

TEST(OptimState, LoadErrors) {
  auto ps = make_params(DType::f64);
  Sgd sgd(two_groups(ps), {.momentum = 0.9});
  set_grads(ps, 1);
  sgd.step();
  const auto good = sgd.state_dict();

  auto sd = good;
  sd.erase("param_groups.1.lr");
  expect_load_error(sgd, sd, "missing key param_groups.1.lr");

  sd = good;
  sd["state.0.0.exp_avg"] = sd.at("state.0.0.momentum_buffer");
  expect_load_error(sgd, sd, "unexpected state entry state.0.0.exp_avg");

  sd = good;
  sd["state.0.1.momentum_buffer"] = zeros({7}, {.dtype = DType::f64});
  expect_load_error(sgd, sd, "state.0.1.momentum_buffer has shape [7], expected [6]");

  sd = good;
  sd["state.1.4.momentum_buffer"] = zeros({3, 5}, {.dtype = DType::f64});
  expect_load_error(sgd, sd, "names parameter 4 of group 1");

  sd = good;
  sd["param_groups.0.num_params"] = scalar_i64(3);
  expect_load_error(sgd, sd, "group 0 has 3 parameters in the state, 2 in the optimizer");

  sd = good;
  sd["options.nesterov"] = scalar_f64(1);
  sd["options.dampening"] = scalar_f64(0.5);
  expect_load_error(sgd, sd, "invalid options in the state (SGD: Nesterov momentum requires");

  sd = good;
  sd["something_else"] = scalar_f64(1);
  expect_load_error(sgd, sd, "unexpected keys something_else");

  // Hostile numbers from a damaged checkpoint (found by fuzz_checkpoint: casting -4.7e18 to size_t
  // was undefined behaviour).
  sd = good;
  sd["param_groups.0.num_params"] = scalar_f64(-4.72899e18);
  expect_load_error(sgd, sd, "group 0 has -4.72899e+18 parameters in the state");
  sd = good;
  sd["param_groups.1.lr"] = scalar_f64(std::nan(""));
  expect_load_error(sgd, sd, "param_groups.1.lr must be a finite number >= 0, got nan");
  sd = good;
  sd["param_groups.0.weight_decay"] = scalar_f64(-1);
  expect_load_error(sgd, sd, "param_groups.0.weight_decay must be a finite number >= 0");

  // Another optimizer's state.
  auto pq = make_params(DType::f64);
  AdamW adam(two_groups(pq));
  set_grads(pq, 1);
  adam.step();
  expect_load_error(sgd, adam.state_dict(), "missing key options.momentum");
  auto adam_sd = adam.state_dict();
  std::string counter;
  for (const auto& [k, t] : adam_sd)
    if (t.numel() == 1 && k.rfind("state.", 0) == 0) counter = k;
  ASSERT_FALSE(counter.empty());
  for (double bad : {1e19, -1.0, 2.5, std::nan("")}) {
    adam_sd[counter] = scalar_f64(bad);
    expect_load_error(adam, adam_sd, counter + " must be a whole number >= 0");
  }

  // Another model: one group instead of two.
  Sgd one({ps[0]}, 0.1, 0.0, {.momentum = 0.9});
  expect_load_error(one, good, "the state has 2 parameter groups, the optimizer has 1");

  // A valid state with other options switches them, like torch.
  Sgd plain(two_groups(make_params(DType::f64)));
  plain.load_state_dict(good);
  EXPECT_EQ(plain.sgd_options().momentum, 0.9);
  EXPECT_EQ(plain.state(0, 0).count("momentum_buffer"), 1u);
}

TEST(OptimState, LoadConvertsDtypeAndLayout) {
  auto p64 = make_params(DType::f64);
  Sgd a(two_groups(p64), {.momentum = 0.5});
  set_grads(p64, 1);
  a.step();
  auto p32 = make_params(DType::f32);
  Sgd b(two_groups(p32), {.momentum = 0.5});
  b.load_state_dict(a.state_dict());
  const Tensor& buf = b.state(0, 0).at("momentum_buffer");
  EXPECT_EQ(buf.dtype(), DType::f32);
  EXPECT_TRUE(buf.is_channels_last());  // the parameter's layout
  const auto want = a.state(0, 0).at("momentum_buffer").to_vector();
  const auto got = buf.to_vector();
  for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(got[k], static_cast<double>(static_cast<float>(want[k])));
}

TEST(OptimBasics, ArgumentChecks) {
  auto ps = make_params(DType::f64);
  EXPECT_THROW(Sgd({ps[0], ps[0]}, 0.1), Error);                                  // duplicate
  EXPECT_THROW(Sgd(std::vector<ParamGroup>{ParamGroup{.params = {ps[0]}}, ParamGroup{.params = {ps[0]}}}), Error);
  EXPECT_THROW(Sgd({ps[0]}, -0.1), Error);                                        // lr
  EXPECT_THROW(Sgd({ps[0]}, 0.1, 0.0, {.momentum = 0.0, .nesterov = true}), Error);
  EXPECT_THROW(Sgd({ps[0]}, 0.1, 0.0, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error);
  EXPECT_THROW(AdamW({ps[0]}, 1e-3, 0.0, {.beta1 = 1.0}), Error);
  EXPECT_THROW(AdamW({ps[0]}, 1e-3, 0.0, {.eps = -1.0}), Error);
  EXPECT_THROW(Sgd({zeros({3}, {.dtype = DType::bf16})}, 0.1), Error);
  EXPECT_THROW(Sgd(std::vector<ParamGroup>{}), Error);
  Tensor nonleaf = mul(ps[1], 2.0);
  EXPECT_THROW(Sgd({nonleaf}, 0.1), Error);
  Tensor strided = zeros({4, 6}).narrow(1, 0, 3);
  EXPECT_THROW(Sgd({strided}, 0.1), Error);
  Sgd ok({ps[0]}, 0.1);
  EXPECT_THROW(ok.add_param_group(ParamGroup{.params = {ps[0]}}), Error);
  ps[0].set_grad(zeros({2, 2}, {.dtype = DType::f64}));
  EXPECT_THROW(ok.step(), Error);  // gradient shape
}

TEST(OptimBasics, ZeroGradAndSkippedParameters) {
  auto ps = make_params(DType::f64);
  Sgd opt(two_groups(ps), {.momentum = 0.9});
  set_grads(ps, 0);  // parameter 1 has none
  const auto p1 = ps[1].to_vector();
  const auto p0 = ps[0].to_vector();
  const Tensor handle = ps[0];
  opt.step();
  EXPECT_EQ(ps[1].to_vector(), p1);
  EXPECT_NE(ps[0].to_vector(), p0);
  EXPECT_TRUE(handle.is_same(opt.param_groups()[0].params[0]));  // updated in place
  EXPECT_TRUE(opt.state(0, 1).empty());
  opt.zero_grad();
  for (const auto& p : ps) EXPECT_FALSE(p.grad().defined());
  const auto p2 = ps[2].to_vector();
  opt.step();  // no gradients: nothing moves
  EXPECT_EQ(ps[2].to_vector(), p2);
}

TEST(OptimBasics, StepUnderGradModeRecordsNothing) {
  Tensor w = from_vector({1.0, 2.0}, {2}, {.dtype = DType::f64});
  w.set_requires_grad(true);
  Sgd opt({w}, 0.5);
  sum(mul(w, w)).backward();
  opt.step();
  EXPECT_EQ(w.to_vector(), (std::vector<double>{0.0, 0.0}));
  EXPECT_TRUE(w.is_leaf());
  EXPECT_FALSE(w.grad_fn());
}

TEST(OptimBasics, WeightDecayParamGroups) {
  nn::Sequential net;
  net.push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 3, .out = 4, .kernel = 3, .bias = false}));
  net.push_back(nn::BatchNorm2d({.features = 4}));
  net.push_back(std::make_shared<nn::Linear>(nn::LinearOptions{.in = 4, .out = 2}));
  net.push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {2}}));
  const auto groups = weight_decay_param_groups(net.named_parameters(), 0.1, 5e-5);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].names, (std::vector<std::string>{"0.weight", "2.weight"}));
  EXPECT_EQ(groups[1].names, (std::vector<std::string>{"1.weight", "1.bias", "2.bias", "3.weight", "3.bias"}));
  EXPECT_EQ(groups[0].weight_decay, 5e-5);
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  EXPECT_EQ(groups[0].lr, 0.1);
  EXPECT_EQ(groups[1].lr, 0.1);
  ASSERT_EQ(groups[0].params.size(), 2u);
  EXPECT_TRUE(groups[0].params[1].is_same(net.named_parameters()[3].second));
  // Usable as is; buffers (running stats) are not parameters.
  Sgd opt(groups, {.momentum = 0.9});
  EXPECT_EQ(opt.param_groups().size(), 2u);
}

}  // namespace
}  // namespace resin::optim
