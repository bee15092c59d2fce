#include "resin/blocks/residual.h"

#include "resin/blocks/param.h"
#include "resin/blocks/resnet_blocks.h"
#include "resin/nn/init.h"

namespace resin::blocks {

Tensor drop_path(const Tensor& x, double p, bool training, Generator* gen) {
  RESIN_CHECK(p >= 0 && p < 1, "drop_path: probability must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  RESIN_CHECK(x.dim() >= 1, "drop_path: expected a batch dim, got shape ", x.shape());
  std::vector<int64_t> ms(static_cast<size_t>(x.dim()), 1);
  ms[0] = x.size(0);
  // keep = (u >= p) for u ~ U[0, 1): a constant mask, so the gradient flows only through x.
  Tensor keep = mul(gt(rand(Shape(ms), {.dtype = x.dtype(), .device = x.device()}, gen), p), 1.0 / (1.0 - p));
  return mul(x, keep);
}

std::vector<double> linear_drop_path(int64_t blocks, double p_max) {
  RESIN_CHECK(blocks >= 0 && p_max >= 0 && p_max < 1,
              "linear_drop_path: expected blocks >= 0 and p_max in [0, 1), got ", blocks, ", ", p_max);
  std::vector<double> p(static_cast<size_t>(blocks));
  for (int64_t l = 1; l <= blocks; ++l)
    p[static_cast<size_t>(l - 1)] = p_max * static_cast<double>(l) / static_cast<double>(blocks);
  return p;
}

std::vector<double> attenuation_schedule(int64_t sublayers, double alpha_min) {
  RESIN_CHECK(sublayers >= 0, "attenuation_schedule: negative sublayer count ", sublayers);
  std::vector<double> a(static_cast<size_t>(sublayers));
  for (int64_t l = 0; l < sublayers; ++l) {
    // The code's linspace(0, 1, S): t_l = l / (S − 1), with t = 0 for a single sublayer.
    const double t = sublayers > 1 ? static_cast<double>(l) / static_cast<double>(sublayers - 1) : 0.0;
    a[static_cast<size_t>(l)] = 1.0 - t * (1.0 - alpha_min);
  }
  return a;
}

namespace {

nn::ModulePtr conv1x1(int64_t in, int64_t out, int64_t stride, bool bias) {
  return std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = in, .out = out, .kernel = 1, .stride = stride, .bias = bias});
}

// W x + b with b initialised to `bias` (gates).
nn::ModulePtr gate_layer(Layer layer, int64_t in, int64_t out, int64_t stride, double bias) {
  nn::ModulePtr m = layer == Layer::conv
                        ? conv1x1(in, out, stride, true)
                        : std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out});
  nn::init::constant_(m->own_parameters()[1].second, bias);
  return m;
}

const char* mix_formula(Mix m) {
  switch (m) {
    case Mix::none: return "F(x)";
    case Mix::sum: return "S(x) + F(x)";
    case Mix::scaled: return "λs·S(x) + λf·F(x)";
    case Mix::learned_scale: return "S(x) + α·F(x)";
    case Mix::exclusive_gate: return "(1 − g(x))·S(x) + g(x)·F(x)";
    case Mix::shortcut_gate: return "(1 − g(x))·S(x) + F(x)";
    case Mix::carry_gate: return "c(x)·S(x) + g(x)·F(x)";
  }
  return "?";
}

}  // namespace

nn::ModulePtr make_shortcut(Shortcut kind, Layer layer, int64_t in, int64_t out, int64_t stride) {
  RESIN_CHECK(in > 0 && out > 0 && stride > 0, "make_shortcut: invalid geometry in=", in, " out=", out,
              " stride=", stride);
  const bool same = in == out && stride == 1;
  if (layer == Layer::linear) {
    RESIN_CHECK(stride == 1, "make_shortcut: the linear domain has no stride, got stride=", stride);
    RESIN_CHECK(kind != Shortcut::zero_pad && kind != Shortcut::avg_projection,
                "make_shortcut: zero_pad and avg_projection need [N, C, H, W] activations (Layer::conv)");
  }
  auto linear = [&] {
    return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out, .bias = false});
  };
  switch (kind) {
    case Shortcut::identity:
      if (same) return nullptr;
      [[fallthrough]];
    case Shortcut::projection:
      if (same) return nullptr;
      [[fallthrough]];
    case Shortcut::projection_all: {
      auto seq = std::make_shared<nn::Sequential>();
      if (layer == Layer::conv) {
        seq->push_back(conv1x1(in, out, stride, false));
        seq->push_back(nn::BatchNorm2d({.features = out}));
      } else {
        seq->push_back(linear());
        seq->push_back(nn::BatchNorm1d({.features = out}));
      }
      return seq;
    }
    case Shortcut::zero_pad:
      if (same) return nullptr;
      RESIN_CHECK(out >= in, "option-A shortcut: cannot shrink channels ", in, " -> ", out);
      return std::make_shared<ZeroPadShortcut>(in, out, stride);
    case Shortcut::avg_projection: {
      if (same) return nullptr;
      auto seq = std::make_shared<nn::Sequential>();
      // ResNet-D moves the stride from the 1×1 conv (which would skip 3/4 of the input) to a pool.
      if (stride > 1) seq->push_back(nn::AvgPool2d({.kernel = {stride, stride}, .stride = {stride, stride}}));
      seq->push_back(conv1x1(in, out, 1, false));
      seq->push_back(nn::BatchNorm2d({.features = out}));
      return seq;
    }
    case Shortcut::conv1x1:
      if (layer == Layer::conv) return conv1x1(in, out, stride, false);
      return linear();
  }
  return nullptr;
}

Residual::Residual(nn::ModulePtr branch, const ResidualOptions& o) : o_(o) {
  RESIN_CHECK(branch != nullptr, "Residual: the branch module is null");
  RESIN_CHECK(o.in > 0 && o.out > 0 && o.stride > 0, "Residual: invalid geometry in=", o.in, " out=", o.out,
              " stride=", o.stride);
  RESIN_CHECK(o.shortcut_dropout >= 0 && o.shortcut_dropout < 1,
              "Residual: shortcut_dropout must be in [0, 1), got ", o.shortcut_dropout);
  RESIN_CHECK(!(o.post == Post::ln && o.layer == Layer::conv),
              "Residual: Post::ln needs Layer::linear ([..., D])");
  set_drop_path(o.drop_path);
  branch_ = register_module("branch", std::move(branch));
  if (o.mix != Mix::none && (shortcut_ = make_shortcut(o.shortcut, o.layer, o.in, o.out, o.stride)))
    register_module("shortcut", shortcut_);
  const bool gated = o.mix == Mix::exclusive_gate || o.mix == Mix::shortcut_gate || o.mix == Mix::carry_gate;
  if (gated) gate_ = register_module("gate", gate_layer(o.layer, o.in, o.out, o.stride, o.gate_bias));
  if (o.mix == Mix::carry_gate)
    carry_ = register_module("carry", gate_layer(o.layer, o.in, o.out, o.stride, o.carry_bias));
  if (o.mix == Mix::learned_scale) register_parameter("alpha", full(Shape{}, o.alpha_init));
  if (o.post == Post::bn_relu)
    post_norm_ = register_module("post_norm", o.layer == Layer::conv ? nn::BatchNorm2d({.features = o.out})
                                                                     : nn::BatchNorm1d({.features = o.out}));
  if (o.post == Post::ln)
    post_norm_ =
        register_module("post_norm", std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {o.out}}));
}

void Residual::set_drop_path(double p) {
  RESIN_CHECK(p >= 0 && p < 1, "Residual: drop_path must be in [0, 1), got ", p);
  o_.drop_path = p;
}

std::string Residual::formula() const {
  std::string z = mix_formula(o_.mix);
  switch (o_.post) {
    case Post::none: return "y = " + z;
    case Post::relu: return "y = relu(" + z + ")";
    case Post::bn_relu: return "y = relu(BN(" + z + "))";
    case Post::ln: return "y = LN(" + z + ")";
  }
  return z;
}

std::string Residual::extra_repr() const {
  std::string s = formula();
  if (o_.mix == Mix::scaled) s += str_cat(", λs=", o_.shortcut_scale, ", λf=", o_.branch_scale);
  if (o_.shortcut_dropout > 0) s += str_cat(", shortcut_dropout=", o_.shortcut_dropout);
  if (o_.drop_path > 0) s += str_cat(", drop_path=", o_.drop_path);
  return s;
}

Tensor Residual::alpha() const { return own_param(*this, "alpha"); }

Tensor Residual::branch(const Tensor& x) { return branch_->forward(x); }
Tensor Residual::shortcut(const Tensor& x) { return shortcut_ ? shortcut_->forward(x) : x; }

Tensor Residual::shortcut_term(const Tensor& x, bool training) {
  Tensor s = shortcut(x);
  if (o_.shortcut_dropout <= 0) return s;
  const double p = o_.shortcut_dropout;
  // dropout() is inverted (mask/(1 − p)); multiplying by (1 − p) leaves the bare mask in training
  // and the expected value (1 − p)·x in eval.
  return o_.shortcut_dropout_rescale ? dropout(s, p, training) : mul(dropout(s, p, training), 1.0 - p);
}

Tensor Residual::post(const Tensor& z) {
  switch (o_.post) {
    case Post::none: return z;
    case Post::relu: return relu(z);
    case Post::bn_relu: return relu(post_norm_->forward(z));
    case Post::ln: return post_norm_->forward(z);
  }
  return z;
}

Tensor Residual::pre_post(const Tensor& x) {
  const bool training = is_training();
  Tensor f = branch(x);
  if (o_.mix == Mix::none) return f;
  Tensor s = shortcut_term(x, training);
  RESIN_CHECK(s.shape() == f.shape(), "Residual: shortcut gives shape ", s.shape(), " but the branch gives ",
              f.shape(), " (in=", o_.in, " out=", o_.out, " stride=", o_.stride, ")");
  Tensor a = s, b = f;  // the two terms before the addition
  switch (o_.mix) {
    case Mix::none:
    case Mix::sum: break;
    case Mix::scaled:
      if (o_.shortcut_scale != 1.0) a = mul(s, o_.shortcut_scale);
      if (o_.branch_scale != 1.0) b = mul(f, o_.branch_scale);
      break;
    case Mix::learned_scale: b = mul(f, alpha()); break;
    case Mix::exclusive_gate: {
      Tensor g = sigmoid(gate_->forward(x));
      a = mul(s, 1.0 - g);
      b = mul(f, g);
      break;
    }
    case Mix::shortcut_gate: a = mul(s, 1.0 - sigmoid(gate_->forward(x))); break;
    case Mix::carry_gate:
      a = mul(s, sigmoid(carry_->forward(x)));
      b = mul(f, sigmoid(gate_->forward(x)));
      break;
  }
  return add(a, drop_path(b, o_.drop_path, training));
}

Tensor Residual::forward(const Tensor& x) { return post(pre_post(x)); }

}  // namespace resin::blocks
