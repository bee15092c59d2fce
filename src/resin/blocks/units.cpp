#include "resin/blocks/units.h"

#include <cmath>

#include "resin/autograd/grad_mode.h"
#include "resin/backend/backend.h"
#include "resin/blocks/param.h"
#include "resin/nn/init.h"

namespace resin::blocks {

Tensor activate(const Tensor& x, Activation a) { return a == Activation::gelu ? gelu(x) : relu(x); }

namespace {

nn::ModulePtr act_module(Activation a) { return a == Activation::gelu ? nn::GELU() : nn::ReLU(); }

nn::ModulePtr weight_layer(Layer layer, int64_t in, int64_t out, int64_t stride, bool bias) {
  if (layer == Layer::conv)
    return std::make_shared<nn::Conv2d>(
        nn::Conv2dOptions{.in = in, .out = out, .kernel = 3, .stride = stride, .padding = 1, .bias = bias});
  RESIN_CHECK(stride == 1, "residual unit: the linear domain has no stride, got stride=", stride);
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out, .bias = bias});
}

nn::ModulePtr norm_layer(Layer layer, int64_t features) {
  return layer == Layer::conv ? nn::BatchNorm2d({.features = features})
                              : nn::BatchNorm1d({.features = features});
}

}  // namespace

const char* placement_name(UnitPlacement p) {
  switch (p) {
    case UnitPlacement::original: return "original";
    case UnitPlacement::bn_after_add: return "bn_after_add";
    case UnitPlacement::relu_before_add: return "relu_before_add";
    case UnitPlacement::relu_preact: return "relu_preact";
    case UnitPlacement::full_preact: return "full_preact";
    case UnitPlacement::ln_pre: return "ln_pre";
    case UnitPlacement::fixup: return "fixup";
  }
  return "?";
}

UnitPlacement parse_placement(const std::string& name) {
  for (auto p :
       {UnitPlacement::original, UnitPlacement::bn_after_add, UnitPlacement::relu_before_add,
        UnitPlacement::relu_preact, UnitPlacement::full_preact, UnitPlacement::ln_pre, UnitPlacement::fixup})
    if (name == placement_name(p)) return p;
  RESIN_FAIL(
      "unknown unit placement '", name,
      "'; expected original, bn_after_add, relu_before_add, relu_preact, full_preact, ln_pre or fixup");
}

Post placement_post(UnitPlacement p, bool norm) {
  switch (p) {
    case UnitPlacement::original:
    case UnitPlacement::fixup: return Post::relu;
    case UnitPlacement::bn_after_add: return norm ? Post::bn_relu : Post::relu;
    default: return Post::none;
  }
}

nn::ModulePtr make_branch(const UnitOptions& o) {
  const ResidualOptions& r = o.residual;
  const int64_t hidden = o.hidden > 0 ? o.hidden : r.out;
  const Layer L = r.layer;
  if (o.placement == UnitPlacement::fixup)
    return std::make_shared<FixupBranch>(L, r.in, hidden, r.out, r.stride, o.activation);
  RESIN_CHECK(o.placement != UnitPlacement::ln_pre || L == Layer::linear, "ln_pre units need Layer::linear");
  const bool n = o.norm;
  auto seq = std::make_shared<nn::Sequential>();
  auto W1 = [&](bool bias) { seq->push_back(weight_layer(L, r.in, hidden, r.stride, bias)); };
  auto W2 = [&](bool bias) { seq->push_back(weight_layer(L, hidden, r.out, 1, bias)); };
  auto BN = [&](int64_t f) {
    if (n) seq->push_back(norm_layer(L, f));
  };
  auto act = [&] { seq->push_back(act_module(o.activation)); };
  // A weight layer carries a bias only where no BN follows it (BN's β subsumes it).
  // clang-format off
  switch (o.placement) {
    case UnitPlacement::original: W1(!n); BN(hidden); act(); W2(!n); BN(r.out); break;
    case UnitPlacement::bn_after_add: W1(!n); BN(hidden); act(); W2(!n); break;
    case UnitPlacement::relu_before_add: W1(!n); BN(hidden); act(); W2(!n); BN(r.out); act(); break;
    case UnitPlacement::relu_preact: act(); W1(!n); BN(hidden); act(); W2(!n); BN(r.out); break;
    case UnitPlacement::full_preact: BN(r.in); act(); W1(!n); BN(hidden); act(); W2(L == Layer::linear); break;
    case UnitPlacement::ln_pre:
      if (n) seq->push_back(std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {r.in}}));
      W1(true); act(); W2(true);
      break;
    case UnitPlacement::fixup: break;
  }
  // clang-format on
  if (o.zero_init_last) {
    // The last module with parameters: a BN (zero γ) or a weight layer (zero weight and bias).
    for (size_t i = seq->size(); i-- > 0;) {
      auto m = (*seq)[i];
      if (m->own_parameters().empty()) continue;
      const bool is_bn = dynamic_cast<nn::BatchNorm*>(m.get()) != nullptr;
      for (auto& [name, p] : m->own_parameters())
        if (!is_bn || name == "weight") nn::init::constant_(p, 0.0);
      break;
    }
  }
  return seq;
}

std::shared_ptr<Residual> make_unit(const UnitOptions& o) {
  ResidualOptions r = o.residual;
  r.post = placement_post(o.placement, o.norm);
  return std::make_shared<Residual>(make_branch(o), r);
}

FixupBranch::FixupBranch(Layer layer, int64_t in, int64_t hidden, int64_t out, int64_t stride, Activation act)
    : layer_(layer), stride_(stride), act_(act) {
  RESIN_CHECK(in > 0 && hidden > 0 && out > 0 && stride > 0, "FixupBranch: invalid geometry ", in, " -> ",
              hidden, " -> ", out, ", stride ", stride);
  RESIN_CHECK(layer == Layer::conv || stride == 1, "FixupBranch: the linear domain has no stride");
  auto scalar = [&](const char* name, double v) { register_parameter(name, full(Shape{}, v)); };
  scalar("bias1a", 0);
  register_parameter("weight1", layer == Layer::conv ? empty({hidden, in, 3, 3}) : empty({hidden, in}));
  scalar("bias1b", 0);
  scalar("bias2a", 0);
  register_parameter("weight2", layer == Layer::conv ? empty({out, hidden, 3, 3}) : empty({out, hidden}));
  scalar("scale", 1);
  scalar("bias2b", 0);
  reinit(1);
}

void FixupBranch::reinit(int64_t num_branches) {
  RESIN_CHECK(num_branches > 0, "FixupBranch::reinit: expected a positive number of branches, got ",
              num_branches);
  NoGradGuard ng;
  Tensor w1 = own_param(*this, "weight1"), w2 = own_param(*this, "weight2");
  nn::init::kaiming_normal_(w1, nn::init::FanMode::fan_out);
  // Zhang et al. 2019: scale by L^(−1/(2m−2)); m = 2 weight layers per branch gives L^(−1/2).
  Tensor scaled = mul(w1, 1.0 / std::sqrt(static_cast<double>(num_branches)));
  backend::backend_for(w1).copy(scaled, w1);
  nn::init::constant_(w2, 0.0);
}

Tensor FixupBranch::forward(const Tensor& x) {
  auto W = [&](const Tensor& h, const Tensor& w, int64_t stride) {
    return layer_ == Layer::conv ? conv2d(h, w, {}, {.stride = {stride, stride}, .padding = {1, 1}})
                                 : linear(h, w);
  };
  auto P = [&](const char* name) { return own_param(*this, name); };
  Tensor h = W(add(x, P("bias1a")), P("weight1"), stride_);
  h = activate(add(h, P("bias1b")), act_);
  h = W(add(h, P("bias2a")), P("weight2"), 1);
  return add(mul(h, P("scale")), P("bias2b"));
}

int64_t fixup_init(nn::Module& root, int64_t num_branches) {
  std::vector<FixupBranch*> branches;
  if (auto* self = dynamic_cast<FixupBranch*>(&root)) branches.push_back(self);
  for (auto& [_, m] : root.named_modules())
    if (auto* b = dynamic_cast<FixupBranch*>(m.get())) branches.push_back(b);
  const int64_t L = num_branches > 0 ? num_branches : static_cast<int64_t>(branches.size());
  for (auto* b : branches) b->reinit(L);
  return L;
}

std::shared_ptr<Residual> make_highway(const HighwayOptions& o) {
  RESIN_CHECK(o.features > 0, "make_highway: features must be positive, got ", o.features);
  auto h = std::make_shared<nn::Sequential>();
  if (o.layer == Layer::conv)
    h->push_back(std::make_shared<nn::Conv2d>(
        nn::Conv2dOptions{.in = o.features, .out = o.features, .kernel = 3, .padding = 1}));
  else
    h->push_back(std::make_shared<nn::Linear>(nn::LinearOptions{.in = o.features, .out = o.features}));
  h->push_back(act_module(o.activation));
  return std::make_shared<Residual>(
      h, ResidualOptions{.in = o.features,
                         .out = o.features,
                         .layer = o.layer,
                         .mix = o.carry_gate ? Mix::carry_gate : Mix::exclusive_gate,
                         .gate_bias = o.gate_bias,
                         .carry_bias = o.carry_bias});
}

}  // namespace resin::blocks
