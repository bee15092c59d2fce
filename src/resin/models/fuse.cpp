#include "resin/models/fuse.h"

#include <optional>

#include "resin/backend/inference_plan.h"
#include "resin/models/resnet.h"
#include "resin/nn/rewrite.h"

namespace resin::models {

namespace {

using Value = backend::InferencePlan::Value;

class FusedModel : public nn::Module {
 public:
  explicit FusedModel(backend::InferencePlan plan) : plan_(std::move(plan)) { Module::train(false); }
  std::string type_name() const override { return "FusedInference"; }
  Tensor forward(const Tensor& x) override {
    RESIN_CHECK(x.dtype() == DType::f32, "FusedInference: expected f32 input, got ", x.dtype());
    return plan_.run(x);
  }
  void train(bool on) override {
    RESIN_CHECK(!on, "FusedInference: a fused module is inference-only; train the original model");
  }
  std::string summary() const { return plan_.summary(); }

 private:
  backend::InferencePlan plan_;
};

backend::Conv2dParams params_of(const nn::Conv2dOptions& o) {
  return {o.stride, o.stride, o.padding, o.padding, o.dilation, o.dilation, o.groups};
}

// Conv (+ BN folded in) as a plan op. Returns nullopt when the BN cannot be folded (no running
// statistics).
struct Folded {
  Tensor w, b;
};
std::optional<Folded> fold(nn::Conv2d& conv, nn::BatchNorm* bn) {
  Tensor w = conv.weight().detach().contiguous();
  Tensor b = conv.bias().defined() ? conv.bias().detach() : Tensor();
  if (!bn) return Folded{w, b};
  Tensor mean = bn->running_mean(), var = bn->running_var();
  if (!mean.defined() || !var.defined()) return std::nullopt;
  const int64_t O = w.size(0);
  const auto g = bn->weight().defined() ? bn->weight().values<double>() : std::vector<double>(O, 1.0);
  const auto beta = bn->bias().defined() ? bn->bias().values<double>() : std::vector<double>(O, 0.0);
  auto wf = w.values<double>();
  auto bf = b.defined() ? b.values<double>() : std::vector<double>(O, 0.0);
  nn::fold_batch_norm(wf, bf, g, beta, mean.values<double>(), var.values<double>(), bn->options().eps);
  return Folded{from_vector(wf, w.shape()), from_vector(bf, Shape{O})};
}

// Fuses model structures into a plan; returns false on anything it does not know.
class Fuser {
 public:
  backend::InferencePlan plan;

  bool resnet(ResNet& net) {
    const ResNetConfig& c = net.config();
    if (c.preact) return false;
    Value v = plan.input(c.in_channels);
    if (!conv_bn(v, net.child("conv1"), net.child("bn1"), true, -1, v)) return false;
    if (c.stem == StemKind::imagenet)
      v = plan.max_pool(v, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1});
    for (size_t s = 1; s <= c.layers.size(); ++s)
      for (auto& [_, block] : net.child("layer" + std::to_string(s))->children())
        if (!this->block(*block, v)) return false;
    v = plan.global_avg_pool(v);
    auto fc = std::dynamic_pointer_cast<nn::Linear>(net.child("fc"));
    if (!fc) return false;
    v = plan.linear(v, fc->weight().detach(), fc->bias().defined() ? fc->bias().detach() : Tensor());
    plan.set_output(v);
    return true;
  }

 private:
  bool conv_bn(Value x, const nn::ModulePtr& conv_m, const nn::ModulePtr& bn_m, bool relu, Value residual,
               Value& out) {
    auto conv = std::dynamic_pointer_cast<nn::Conv2d>(conv_m);
    auto bn = std::dynamic_pointer_cast<nn::BatchNorm>(bn_m);
    if (!conv || (bn_m && !bn)) return false;
    auto f = fold(*conv, bn.get());
    if (!f) return false;
    out = plan.conv(x, f->w, f->b, params_of(conv->options()), relu, residual);
    return true;
  }

  // The shortcut of a unit: identity, a projection (conv + BN) or option A as a 1×1 conv.
  bool shortcut(const nn::Module& block, Value x, Value& out) {
    nn::ModulePtr ds;
    for (auto& [name, m] : block.children())
      if (name == "downsample") ds = m;
    if (!ds) {
      out = x;
      return true;
    }
    if (auto zp = std::dynamic_pointer_cast<blocks::ZeroPadShortcut>(ds)) {
      const int64_t in = zp->in_channels(), o = zp->out_channels(), lo = (o - in) / 2;
      std::vector<double> w(static_cast<size_t>(o * in), 0.0);
      for (int64_t i = 0; i < in; ++i) w[static_cast<size_t>((lo + i) * in + i)] = 1.0;
      const int64_t s = zp->stride();
      out = plan.conv(x, from_vector(w, {o, in, 1, 1}), Tensor(), {s, s, 0, 0, 1, 1, 1}, false);
      return true;
    }
    auto seq = std::dynamic_pointer_cast<nn::Sequential>(ds);
    if (!seq || seq->size() < 1 || seq->size() > 2) return false;
    return conv_bn(x, (*seq)[0], seq->size() == 2 ? (*seq)[1] : nullptr, false, -1, out);
  }

  bool block(nn::Module& m, Value& v) {
    std::vector<std::string> convs;
    bool residual = false;
    if (auto* b = dynamic_cast<blocks::BasicBlock*>(&m)) {
      convs = {"1", "2"};
      residual = b->options().residual;
    } else if (auto* b = dynamic_cast<blocks::Bottleneck*>(&m)) {
      convs = {"1", "2", "3"};
      residual = b->options().residual;
    } else {
      return false;
    }
    Value sc = -1;
    if (residual && !shortcut(m, v, sc)) return false;
    Value h = v;
    for (size_t i = 0; i < convs.size(); ++i) {
      const bool last = i + 1 == convs.size();
      if (!conv_bn(h, m.child("conv" + convs[i]), m.child("bn" + convs[i]), true, last ? sc : -1, h)) return false;
    }
    v = h;
    return true;
  }
};

}  // namespace

nn::ModulePtr fuse_for_inference(const nn::ModulePtr& model) {
  RESIN_CHECK(model, "fuse_for_inference: null model");
  if (!backend::InferencePlan::available()) return model;
  if (model->parameters().empty() || model->parameters()[0].dtype() != DType::f32) return model;
  Fuser f;
  if (auto* net = dynamic_cast<ResNet*>(model.get()); net && f.resnet(*net))
    return std::make_shared<FusedModel>(std::move(f.plan));
  return model;
}

bool is_fused_plan(const nn::Module& m) { return dynamic_cast<const FusedModel*>(&m) != nullptr; }

std::string fused_plan_summary(const nn::Module& m) {
  auto* f = dynamic_cast<const FusedModel*>(&m);
  return f ? f->summary() : "";
}

}  // namespace resin::models
