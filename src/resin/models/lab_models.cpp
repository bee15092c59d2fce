#include "resin/models/lab_models.h"

#include <map>
#include <set>

#include "resin/blocks/embedding.h"
#include "resin/nn/init.h"

namespace resin::models {

using namespace blocks;

LabNet::LabNet(std::string name, nn::ModulePtr stem, nn::ModulePtr blocks, nn::ModulePtr final,
               nn::ModulePtr head, bool flatten_input)
    : name_(std::move(name)), flatten_input_(flatten_input) {
  stem_ = register_module("stem", std::move(stem));
  blocks_ = register_module("blocks", std::move(blocks));
  if (final) final_ = register_module("final", std::move(final));
  head_ = register_module("head", std::move(head));
}

Tensor LabNet::stem_output(const Tensor& x) {
  RESIN_CHECK(x.defined() && x.dim() >= 2, type_name(), ": expected [N, ...] input, got ",
              x.defined() ? x.shape().str() : "undefined");
  RESIN_CHECK(flatten_input_ || x.dim() == 4, type_name(), ": expected [N, C, H, W] input, got ", x.shape());
  return stem_->forward(x.dim() == 2 || !flatten_input_ ? x : x.flatten(1));
}

Tensor LabNet::forward(const Tensor& x) {
  Tensor h = blocks_->forward(stem_output(x));
  if (final_) h = final_->forward(h);
  return head_->forward(h);
}

namespace {

std::shared_ptr<nn::Linear> linear_layer(int64_t in, int64_t out, bool bias = true) {
  return std::make_shared<nn::Linear>(nn::LinearOptions{.in = in, .out = out, .bias = bias});
}
nn::ModulePtr act_layer(Activation a) { return a == Activation::gelu ? nn::GELU() : nn::ReLU(); }

// Linear → (BN) → act.
std::shared_ptr<nn::Sequential> dense_layer(int64_t in, int64_t out, bool norm, Activation a) {
  auto s = std::make_shared<nn::Sequential>();
  s->push_back(linear_layer(in, out, !norm));
  if (norm) s->push_back(nn::BatchNorm1d({.features = out}));
  s->push_back(act_layer(a));
  return s;
}

bool is_preact(UnitPlacement p) {
  return p == UnitPlacement::relu_preact || p == UnitPlacement::full_preact || p == UnitPlacement::ln_pre;
}

}  // namespace

std::shared_ptr<LabNet> make_mlp(const MlpOptions& o) {
  RESIN_CHECK(o.in > 0 && o.width > 0 && o.classes > 0 && o.depth >= 2,
              "make_mlp: expected in, width, classes > 0 and depth >= 2, got in=", o.in, " width=", o.width,
              " depth=", o.depth, " classes=", o.classes);
  auto hidden = std::make_shared<nn::Sequential>();
  for (int64_t i = 0; i < o.depth - 2; ++i)
    hidden->push_back(dense_layer(o.width, o.width, o.norm, o.activation));
  return std::make_shared<LabNet>(str_cat("MLP(", o.width, ", ", o.depth, ")"),
                                  dense_layer(o.in, o.width, o.norm, o.activation), hidden, nullptr,
                                  linear_layer(o.width, o.classes));
}

std::shared_ptr<LabNet> make_res_mlp(const ResMlpOptions& o) {
  RESIN_CHECK(o.in > 0 && o.width > 0 && o.classes > 0 && o.blocks >= 0,
              "make_res_mlp: invalid sizes in=", o.in, " width=", o.width, " blocks=", o.blocks,
              " classes=", o.classes);
  const bool laurel = o.laurel_rw || o.laurel_rank > 0 || o.laurel_k > 0;
  const bool pre = is_preact(o.placement) || o.placement == UnitPlacement::relu_before_add;
  RESIN_CHECK(!laurel || pre,
              "make_res_mlp: LAuReL needs a unit without a post-addition op (relu_before_add, "
              "relu_preact, full_preact, ln_pre), got ",
              placement_name(o.placement));
  RESIN_CHECK(o.alpha_min == 1.0 || o.mix == Mix::sum || o.mix == Mix::scaled,
              "make_res_mlp: alpha_min (attenuated identity) needs mix sum or scaled");
  // Stem: post-activation placements feed the units an activated representation.
  nn::ModulePtr stem;
  if (is_preact(o.placement))
    stem = linear_layer(o.in, o.width);
  else
    stem = dense_layer(o.in, o.width, o.norm && o.placement != UnitPlacement::fixup, o.activation);

  UnitOptions u{.residual = {.in = o.width,
                             .out = o.width,
                             .layer = Layer::linear,
                             .shortcut = o.shortcut,
                             .mix = o.mix,
                             .shortcut_scale = o.shortcut_scale,
                             .branch_scale = o.branch_scale,
                             .alpha_init = o.alpha_init,
                             .gate_bias = o.gate_bias,
                             .carry_bias = o.carry_bias,
                             .shortcut_dropout = o.shortcut_dropout,
                             .shortcut_dropout_rescale = o.shortcut_dropout_rescale},
                .placement = o.placement,
                .hidden = o.hidden,
                .norm = o.norm,
                .activation = o.activation,
                .zero_init_last = o.zero_init_last};
  const auto alphas = attenuation_schedule(o.blocks, o.alpha_min);
  const auto drops = linear_drop_path(o.blocks, o.drop_path_max);
  nn::ModulePtr stack;
  if (laurel) {
    auto seq = std::make_shared<LaurelSequence>();
    for (int64_t b = 0; b < o.blocks; ++b)
      seq->push_back(
          std::make_shared<LaurelBlock>(make_branch(u), LaurelOptions{.features = o.width,
                                                                      .rw = o.laurel_rw,
                                                                      .lr_rank = o.laurel_rank,
                                                                      .pa_k = o.laurel_k,
                                                                      .pa_rank = o.laurel_pa_rank}));
    stack = seq;
  } else {
    auto seq = std::make_shared<nn::Sequential>();
    for (int64_t b = 0; b < o.blocks; ++b) {
      UnitOptions ub = u;
      if (o.alpha_min != 1.0) {
        ub.residual.mix = Mix::scaled;
        ub.residual.shortcut_scale = alphas[static_cast<size_t>(b)];
      }
      ub.residual.drop_path = drops[static_cast<size_t>(b)];
      seq->push_back(make_unit(ub));
    }
    stack = seq;
  }
  nn::ModulePtr final;
  if (o.placement == UnitPlacement::ln_pre && o.norm)
    final = std::make_shared<nn::LayerNorm>(nn::LayerNormOptions{.shape = {o.width}});
  else if (o.placement == UnitPlacement::full_preact || o.placement == UnitPlacement::relu_preact) {
    auto f = std::make_shared<nn::Sequential>();
    if (o.norm) f->push_back(nn::BatchNorm1d({.features = o.width}));
    f->push_back(act_layer(o.activation));
    final = f;
  }
  auto head = linear_layer(o.width, o.classes);
  if (o.placement == UnitPlacement::fixup) {
    fixup_init(*stack, o.blocks);
    for (auto& [_, p] : head->own_parameters()) nn::init::constant_(p, 0.0);
  }
  const std::string name = str_cat(o.mix == Mix::none ? "PlainMLP(" : "ResMLP(", o.width, ", ", o.blocks,
                                   ", ", placement_name(o.placement), laurel ? ", LAuReL)" : ")");
  return std::make_shared<LabNet>(name, stem, stack, final, head);
}

std::shared_ptr<LabNet> make_res_cnn(const ResCnnOptions& o) {
  RESIN_CHECK(o.in_channels > 0 && o.classes > 0 && o.n >= 1 && o.width > 0,
              "make_res_cnn: invalid sizes in_channels=", o.in_channels, " n=", o.n, " width=", o.width,
              " classes=", o.classes);
  RESIN_CHECK(o.placement != UnitPlacement::ln_pre, "make_res_cnn: placement ln_pre is for linear layers");
  const bool pre = is_preact(o.placement);
  const bool fixup = o.placement == UnitPlacement::fixup;
  auto conv3x3 = [](int64_t in, int64_t out, bool bias) {
    return std::make_shared<nn::Conv2d>(
        nn::Conv2dOptions{.in = in, .out = out, .kernel = 3, .stride = 1, .padding = 1, .bias = bias});
  };
  const bool stem_norm = o.norm && !fixup;
  auto stem = std::make_shared<nn::Sequential>();
  stem->push_back(conv3x3(o.in_channels, o.width, !stem_norm));
  if (!pre) {
    if (stem_norm) stem->push_back(nn::BatchNorm2d({.features = o.width}));
    stem->push_back(act_layer(o.activation));
  }
  const int64_t units = 3 * o.n;
  const auto drops = linear_drop_path(units, o.drop_path_max);
  auto stack = std::make_shared<nn::Sequential>();
  int64_t in = o.width;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t out = o.width << stage;
    for (int64_t i = 0; i < o.n; ++i) {
      const int64_t stride = stage > 0 && i == 0 ? 2 : 1;
      stack->push_back(make_unit({.residual = {.in = in,
                                               .out = out,
                                               .stride = stride,
                                               .layer = Layer::conv,
                                               .shortcut = o.shortcut,
                                               .mix = o.mix,
                                               .shortcut_scale = o.shortcut_scale,
                                               .branch_scale = o.branch_scale,
                                               .alpha_init = o.alpha_init,
                                               .gate_bias = o.gate_bias,
                                               .carry_bias = o.carry_bias,
                                               .shortcut_dropout = o.shortcut_dropout,
                                               .shortcut_dropout_rescale = o.shortcut_dropout_rescale,
                                               .drop_path = drops[static_cast<size_t>(stage * o.n + i)]},
                                  .placement = o.placement,
                                  .norm = o.norm,
                                  .activation = o.activation,
                                  .zero_init_last = o.zero_init_last}));
      in = out;
    }
  }
  auto final = std::make_shared<nn::Sequential>();
  if (pre) {
    if (o.norm) final->push_back(nn::BatchNorm2d({.features = in}));
    final->push_back(act_layer(o.activation));
  }
  final->push_back(nn::AdaptiveAvgPool2d(1, 1));
  final->push_back(nn::Flatten());
  auto head = linear_layer(in, o.classes);
  if (fixup) {
    fixup_init(*stack, units);
    for (auto& [_, p] : head->own_parameters()) nn::init::constant_(p, 0.0);
  }
  const std::string name = str_cat(o.mix == Mix::none ? "PlainCNN-" : "ResCNN-", 6 * o.n + 2, "(",
                                   placement_name(o.placement), ")");
  return std::make_shared<LabNet>(name, stem, stack, final, head, /*flatten_input=*/false);
}

std::shared_ptr<LabNet> make_highway_mlp(const HighwayMlpOptions& o) {
  RESIN_CHECK(o.in > 0 && o.width > 0 && o.classes > 0 && o.layers >= 0,
              "make_highway_mlp: invalid sizes in=", o.in, " width=", o.width, " layers=", o.layers,
              " classes=", o.classes);
  auto seq = std::make_shared<nn::Sequential>();
  for (int64_t l = 0; l < o.layers; ++l)
    seq->push_back(make_highway({.features = o.width,
                                 .layer = Layer::linear,
                                 .gate_bias = o.gate_bias,
                                 .carry_gate = o.carry_gate,
                                 .carry_bias = o.carry_bias,
                                 .activation = o.activation}));
  return std::make_shared<LabNet>(str_cat("HighwayMLP(", o.width, ", ", o.layers, ")"),
                                  dense_layer(o.in, o.width, false, o.activation), seq, nullptr,
                                  linear_layer(o.width, o.classes));
}

std::shared_ptr<LabNet> make_rev_mlp(const RevMlpOptions& o) {
  RESIN_CHECK(o.in > 0 && o.width > 0 && o.width % 2 == 0 && o.classes > 0 && o.blocks >= 0,
              "make_rev_mlp: width must be even and sizes positive, got in=", o.in, " width=", o.width,
              " blocks=", o.blocks, " classes=", o.classes);
  const int64_t h = o.width / 2;
  auto fg = [h] {
    return std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
        linear_layer(h, h, false), nn::BatchNorm1d({.features = h}), nn::ReLU(), linear_layer(h, h)});
  };
  std::vector<std::shared_ptr<RevBlock>> bl;
  for (int64_t b = 0; b < o.blocks; ++b) bl.push_back(std::make_shared<RevBlock>(fg(), fg()));
  auto stack = std::make_shared<ReversibleSequence>(
      bl, ReversibleOptions{.dim = 1, .recompute = o.recompute, .wide_stream = o.wide_stream});
  return std::make_shared<LabNet>(str_cat("RevMLP(", o.width, ", ", o.blocks, ")"),
                                  dense_layer(o.in, o.width, true, Activation::relu), stack, nullptr,
                                  linear_layer(o.width, o.classes));
}

TransformerClassifier::TransformerClassifier(const TransformerClassifierOptions& o) {
  if (o.input == TokenInput::rows)
    embed_ = register_module(
        "embed", std::make_shared<RowEmbedding>(o.in_channels, o.image_size, o.image_size, o.dim));
  else
    embed_ = register_module(
        "embed",
        std::make_shared<PatchEmbedding>(PatchEmbeddingOptions{
            .in_channels = o.in_channels, .image_size = o.image_size, .patch = o.patch, .dim = o.dim}));
  encoder_ = register_module("encoder", std::make_shared<TransformerEncoder>(
                                            TransformerStackOptions{.layer = {.dim = o.dim,
                                                                              .heads = o.heads,
                                                                              .ff = o.ff,
                                                                              .dropout = o.dropout,
                                                                              .activation = o.activation,
                                                                              .placement = o.placement},
                                                                    .layers = o.depth,
                                                                    .alpha_min = o.alpha_min,
                                                                    .drop_path_max = o.drop_path_max}));
  head_ =
      register_module("head", std::make_shared<ClassifierHead>(
                                  o.dim, o.classes, o.input == TokenInput::rows ? Pool::mean : Pool::cls));
}

Tensor TransformerClassifier::forward(const Tensor& x) {
  return head_->forward(encoder_->forward(embed_->forward(x)));
}

}  // namespace resin::models

// ---- `family:key=value,...` specs
namespace resin::models {
namespace {

class Spec {
 public:
  explicit Spec(const std::string& text) {
    const size_t colon = text.find(':');
    family_ = text.substr(0, colon);
    if (colon == std::string::npos) return;
    size_t pos = colon + 1;
    while (pos <= text.size()) {
      size_t end = text.find(',', pos);
      if (end == std::string::npos) end = text.size();
      const std::string item = text.substr(pos, end - pos);
      const size_t eq = item.find('=');
      RESIN_CHECK(eq != std::string::npos && eq > 0, "model spec '", text, "': expected key=value, got '",
                  item, "'");
      RESIN_CHECK(kv_.emplace(item.substr(0, eq), item.substr(eq + 1)).second, "model spec '", text,
                  "': key '", item.substr(0, eq), "' given twice");
      pos = end + 1;
    }
  }
  const std::string& family() const { return family_; }

  std::string str(const std::string& k, const std::string& def) {
    asked_.push_back(k);
    auto it = kv_.find(k);
    return it == kv_.end() ? def : it->second;
  }
  double num(const std::string& k, double def) {
    const std::string v = str(k, "");
    if (v.empty()) return def;
    try {
      size_t used = 0;
      const double d = std::stod(v, &used);
      if (used == v.size()) return d;
    } catch (const std::exception&) {
    }
    RESIN_FAIL("model spec: ", k, "=", v, " is not a number");
  }
  int64_t integer(const std::string& k, int64_t def) {
    const double d = num(k, static_cast<double>(def));
    RESIN_CHECK(d == static_cast<double>(static_cast<int64_t>(d)), "model spec: ", k,
                " must be an integer, got ", d);
    return static_cast<int64_t>(d);
  }
  bool flag(const std::string& k, bool def) {
    const std::string v = str(k, def ? "1" : "0");
    RESIN_CHECK(v == "1" || v == "0" || v == "true" || v == "false", "model spec: ", k,
                " must be 0/1/true/false, got ", v);
    return v == "1" || v == "true";
  }
  template <class E>
  E choice(const std::string& k, E def, const std::vector<std::pair<const char*, E>>& names) {
    const std::string v = str(k, "");
    if (v.empty()) return def;
    std::string all;
    for (auto& [n, e] : names) {
      if (v == n) return e;
      all += std::string(all.empty() ? "" : ", ") + n;
    }
    RESIN_FAIL("model spec: ", k, "=", v, " is not one of ", all);
  }
  // Every given key must have been asked for.
  void finish() const {
    const std::set<std::string> known(asked_.begin(), asked_.end());
    for (auto& [k, _] : kv_) {
      if (known.count(k)) continue;
      std::string all;
      for (auto& a : asked_) all += (all.empty() ? "" : ", ") + a;
      RESIN_FAIL("model spec: family '", family_, "' has no key '", k, "'; keys: ", all);
    }
  }

 private:
  std::string family_;
  std::map<std::string, std::string> kv_;
  std::vector<std::string> asked_;
};

const std::vector<std::pair<const char*, Activation>> kActs = {{"relu", Activation::relu},
                                                               {"gelu", Activation::gelu}};
const std::vector<std::pair<const char*, UnitPlacement>> kUnits = {
    {"original", UnitPlacement::original},
    {"bn_after_add", UnitPlacement::bn_after_add},
    {"relu_before_add", UnitPlacement::relu_before_add},
    {"relu_preact", UnitPlacement::relu_preact},
    {"full_preact", UnitPlacement::full_preact},
    {"ln_pre", UnitPlacement::ln_pre},
    {"fixup", UnitPlacement::fixup}};
const std::vector<std::pair<const char*, Mix>> kMixes = {{"none", Mix::none},
                                                         {"sum", Mix::sum},
                                                         {"scaled", Mix::scaled},
                                                         {"learned_scale", Mix::learned_scale},
                                                         {"exclusive_gate", Mix::exclusive_gate},
                                                         {"shortcut_gate", Mix::shortcut_gate},
                                                         {"carry_gate", Mix::carry_gate}};
const std::vector<std::pair<const char*, Shortcut>> kShortcuts = {
    {"identity", Shortcut::identity},
    {"projection", Shortcut::projection},
    {"projection_all", Shortcut::projection_all},
    {"conv1x1", Shortcut::conv1x1}};
const std::vector<std::pair<const char*, Shortcut>> kConvShortcuts = {
    {"zero_pad", Shortcut::zero_pad},       {"identity", Shortcut::identity},
    {"projection", Shortcut::projection},   {"projection_all", Shortcut::projection_all},
    {"avg_projection", Shortcut::avg_projection}, {"conv1x1", Shortcut::conv1x1}};
const std::vector<std::pair<const char*, Placement>> kNorms = {{"post", Placement::post},
                                                               {"pre", Placement::pre},
                                                               {"peri", Placement::peri},
                                                               {"rezero", Placement::rezero}};

const char* kFamilies = "mlp, resmlp, rescnn, highway, revmlp, rowformer, vit";

nn::ModulePtr build(Spec& s, const ModelArgs& a) {
  const int64_t in = s.integer("in", a.in_channels * a.image_size * a.image_size);
  const int64_t classes = s.integer("classes", a.num_classes);
  const std::string& f = s.family();
  nn::ModulePtr m;
  if (f == "mlp") {
    m = make_mlp({.in = in,
                  .width = s.integer("width", 64),
                  .depth = s.integer("depth", 20),
                  .classes = classes,
                  .norm = s.flag("norm", true),
                  .activation = s.choice("act", Activation::relu, kActs)});
  } else if (f == "resmlp") {
    ResMlpOptions o{
        .in = in, .width = s.integer("width", 64), .blocks = s.integer("blocks", 9), .classes = classes};
    o.placement = s.choice("placement", o.placement, kUnits);
    o.mix = s.choice("mix", o.mix, kMixes);
    o.shortcut = s.choice("shortcut", o.shortcut, kShortcuts);
    o.norm = s.flag("norm", true);
    o.activation = s.choice("act", o.activation, kActs);
    o.hidden = s.integer("hidden", 0);
    o.shortcut_scale = s.num("shortcut_scale", 1.0);
    o.branch_scale = s.num("branch_scale", 1.0);
    o.alpha_init = s.num("alpha_init", 0.0);
    o.gate_bias = s.num("gate_bias", 0.0);
    o.carry_bias = s.num("carry_bias", 0.0);
    o.shortcut_dropout = s.num("shortcut_dropout", 0.0);
    o.shortcut_dropout_rescale = s.flag("shortcut_dropout_rescale", false);
    o.alpha_min = s.num("alpha_min", 1.0);
    o.drop_path_max = s.num("drop_path", 0.0);
    o.zero_init_last = s.flag("zero_init_last", false);
    o.laurel_rw = s.flag("laurel_rw", false);
    o.laurel_rank = s.integer("laurel_rank", 0);
    o.laurel_k = s.integer("laurel_k", 0);
    o.laurel_pa_rank = s.integer("laurel_pa_rank", 0);
    m = make_res_mlp(o);
  } else if (f == "rescnn") {
    ResCnnOptions o{.in_channels = a.in_channels, .classes = classes};
    o.n = s.integer("n", o.n);
    o.width = s.integer("width", o.width);
    o.placement = s.choice("placement", o.placement, kUnits);
    o.mix = s.choice("mix", o.mix, kMixes);
    o.shortcut = s.choice("shortcut", o.shortcut, kConvShortcuts);
    o.norm = s.flag("norm", true);
    o.activation = s.choice("act", o.activation, kActs);
    o.shortcut_scale = s.num("shortcut_scale", 1.0);
    o.branch_scale = s.num("branch_scale", 1.0);
    o.alpha_init = s.num("alpha_init", 0.0);
    o.gate_bias = s.num("gate_bias", 0.0);
    o.carry_bias = s.num("carry_bias", 0.0);
    o.shortcut_dropout = s.num("shortcut_dropout", 0.0);
    o.shortcut_dropout_rescale = s.flag("shortcut_dropout_rescale", false);
    o.drop_path_max = s.num("drop_path", 0.0);
    o.zero_init_last = s.flag("zero_init_last", false);
    m = make_res_cnn(o);
  } else if (f == "highway") {
    m = make_highway_mlp({.in = in,
                          .width = s.integer("width", 50),
                          .layers = s.integer("layers", 9),
                          .classes = classes,
                          .gate_bias = s.num("gate_bias", -2.0),
                          .carry_gate = s.flag("carry_gate", false),
                          .carry_bias = s.num("carry_bias", 2.0),
                          .activation = s.choice("act", Activation::relu, kActs)});
  } else if (f == "revmlp") {
    m = make_rev_mlp({.in = in,
                      .width = s.integer("width", 64),
                      .blocks = s.integer("blocks", 8),
                      .classes = classes,
                      .recompute = s.flag("recompute", true)});
  } else if (f == "rowformer" || f == "vit") {
    const bool vit = f == "vit";
    m = std::make_shared<TransformerClassifier>(
        TransformerClassifierOptions{.in_channels = a.in_channels,
                                     .image_size = a.image_size,
                                     .classes = classes,
                                     .input = vit ? TokenInput::patches : TokenInput::rows,
                                     .patch = vit ? s.integer("patch", 7) : 7,
                                     .dim = s.integer("dim", 64),
                                     .depth = s.integer("depth", 6),
                                     .heads = s.integer("heads", 4),
                                     .ff = s.integer("ff", 128),
                                     .placement = s.choice("norm", Placement::pre, kNorms),
                                     .activation = s.choice("act", Activation::relu, kActs),
                                     .dropout = s.num("dropout", 0.0),
                                     .alpha_min = s.num("alpha_min", 1.0),
                                     .drop_path_max = s.num("drop_path", 0.0)});
  } else {
    RESIN_FAIL("unknown lab model family '", f, "'; families: ", kFamilies);
  }
  s.finish();
  return m;
}

}  // namespace

bool is_lab_spec(const std::string& name) {
  const std::string fam = name.substr(0, name.find(':'));
  for (const char* f : {"mlp", "resmlp", "rescnn", "highway", "revmlp", "rowformer", "vit"})
    if (fam == f) return true;
  return false;
}

nn::ModulePtr create_lab_model(const std::string& spec, const ModelArgs& args) {
  Spec s(spec);
  return build(s, args);
}

std::string lab_model_help() {
  return "Lab models: FAMILY[:key=value,...] (every key optional)\n"
         "  mlp        width depth norm act                      MLP(w, L): L weight layers, Linear-BN-act\n"
         "  resmlp     width blocks placement mix shortcut norm act hidden shortcut_scale branch_scale\n"
         "             alpha_init gate_bias carry_bias shortcut_dropout shortcut_dropout_rescale alpha_min\n"
         "             drop_path zero_init_last laurel_rw laurel_rank laurel_k laurel_pa_rank\n"
         "               placement: original bn_after_add relu_before_add relu_preact full_preact ln_pre "
         "fixup\n"
         "               mix: none sum scaled learned_scale exclusive_gate shortcut_gate carry_gate\n"
         "               shortcut: identity projection projection_all conv1x1\n"
         "  rescnn     n width placement mix shortcut norm act shortcut_scale branch_scale alpha_init\n"
         "             gate_bias carry_bias shortcut_dropout shortcut_dropout_rescale drop_path zero_init_last\n"
         "               CIFAR ResNet-(6n+2) of 3x3 conv units; placement and mix as resmlp (not ln_pre)\n"
         "               shortcut: zero_pad (option A, default) identity projection projection_all\n"
         "               avg_projection conv1x1\n"
         "  highway    width layers gate_bias carry_gate carry_bias act\n"
         "  revmlp     width blocks recompute\n"
         "  rowformer  dim depth heads ff norm act dropout alpha_min drop_path   (one token per image row)\n"
         "  vit        patch dim depth heads ff norm act dropout alpha_min drop_path\n"
         "               norm: post pre peri rezero\n"
         "  every family: in classes (default: from the dataset)\n";
}

std::vector<ZooEntry> lab_zoo_entries() {
  struct Named {
    const char* name;
    const char* family;
    const char* spec;
    const char* description;
  };
  static const Named kNamed[] = {
      {"lab_plain20", "lab-mlp", "mlp:width=64,depth=20", "E1 plain-20: MLP(64, 20), Linear-BN-ReLU"},
      {"lab_plain56", "lab-mlp", "mlp:width=64,depth=56", "E1 plain-56: MLP(64, 56)"},
      {"lab_res20", "lab-mlp", "resmlp:width=64,blocks=9",
       "E1 res-20: 9 post-activation units, relu(x + F(x))"},
      {"lab_res56", "lab-mlp", "resmlp:width=64,blocks=27", "E1 res-56: 27 post-activation units"},
      {"lab_preact_res56", "lab-mlp", "resmlp:width=64,blocks=27,placement=full_preact",
       "27 full pre-activation units"},
      {"lab_rezero_res100", "lab-mlp",
       "resmlp:width=64,blocks=100,placement=full_preact,norm=0,mix=learned_scale",
       "E11 norm-free ReZero/SkipInit res-MLP(64, 100): x + α·F(x), α = 0"},
      {"lab_fixup_res100", "lab-mlp", "resmlp:width=64,blocks=100,placement=fixup",
       "E11 Fixup res-MLP(64, 100)"},
      {"lab_laurel_res12", "lab-mlp",
       "resmlp:width=64,blocks=12,placement=full_preact,laurel_rw=1,laurel_rank=16,laurel_k=3",
       "E8 pre-act res-MLP(64, 12) with LAuReL RW+LR(16)+PA(3)"},
      {"lab_rescnn20", "lab-cnn", "rescnn:n=3", "E1-CNN res-20: CIFAR ResNet-20, option A shortcuts"},
      {"lab_plaincnn20", "lab-cnn", "rescnn:n=3,mix=none", "E1-CNN plain-20: ResNet-20 without shortcuts"},
      {"lab_rescnn56", "lab-cnn", "rescnn:n=9", "E1-CNN res-56"},
      {"lab_plaincnn56", "lab-cnn", "rescnn:n=9,mix=none", "E1-CNN plain-56"},
      {"lab_preact_rescnn110", "lab-cnn", "rescnn:n=18,placement=full_preact",
       "He 2016 pre-activation ResNet-110 (basic units)"},
      {"lab_highway50", "lab-mlp", "highway:width=50,layers=49",
       "E5 highway-50: 49 highway layers, b_T = -2"},
      {"lab_rev_mlp8", "lab-mlp", "revmlp:width=64,blocks=8",
       "E9 RevMLP: 8 reversible blocks on 32+32 features"},
      {"lab_rowformer_post6", "lab-transformer", "rowformer:norm=post",
       "E6 Post-LN encoder over image rows, d=64, L=6"},
      {"lab_rowformer_pre6", "lab-transformer", "rowformer:norm=pre", "E6 Pre-LN encoder over image rows"},
      {"lab_rowformer_peri6", "lab-transformer", "rowformer:norm=peri", "E6 Peri-LN encoder over image rows"},
      {"lab_vit7", "lab-transformer", "vit:patch=7", "ViT with 7x7 patches, d=64, L=6, Pre-LN"},
  };
  std::vector<ZooEntry> out;
  for (const Named& n : kNamed) {
    ZooEntry e;
    e.name = n.name;
    e.family = n.family;
    e.description = std::string(n.description) + " [" + n.spec + "]";
    e.paper_args = {.in_channels = 1, .num_classes = 10, .image_size = 28};
    const std::string spec = n.spec;
    e.make = [spec](const ModelArgs& a) { return create_lab_model(spec, a); };
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace resin::models
