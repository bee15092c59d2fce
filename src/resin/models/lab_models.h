// The lab's small networks (/work/shared/LAB.md): MLPs, residual MLPs in every unit placement
// and mixing rule, highway MLPs, reversible MLPs, LAuReL MLPs, and small Transformer classifiers
// over image rows or patches. Every model takes images [N, C, H, W] (or already flat [N, C·H·W]
// for the MLPs) and returns logits [N, classes].
//
// From C++: make_res_mlp({.width = 64, .blocks = 27, .placement = blocks::UnitPlacement::full_preact}).
// From the CLI, as a model name `family:key=value,...` (`resin train --model resmlp:width=64,blocks=27`);
// lab_model_help() lists every family and key. The zoo lists a few named configurations too.
#pragma once
#include <string>
#include <vector>

#include "resin/blocks/laurel.h"
#include "resin/blocks/reversible.h"
#include "resin/blocks/transformer.h"
#include "resin/models/zoo.h"

namespace resin::models {

// x → flatten → stem → blocks → final → head. Children "stem", "blocks", "final" (optional), "head".
// Convolutional lab nets (flatten_input = false) take [N, C, H, W] as it is.
class LabNet : public nn::Module {
 public:
  LabNet(std::string name, nn::ModulePtr stem, nn::ModulePtr blocks, nn::ModulePtr final, nn::ModulePtr head,
         bool flatten_input = true);
  std::string type_name() const override { return name_; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // The stack between stem and head (a Sequential, LaurelSequence or ReversibleSequence).
  nn::ModulePtr blocks() const { return blocks_; }
  // The representation after the stem (what every block stack starts from).
  Tensor stem_output(const Tensor& x);
  // Whether forward flattens [N, C, H, W] images to [N, C·H·W] before the stem (the MLPs).
  bool flattens_input() const { return flatten_input_; }

 private:
  std::string name_;
  nn::ModulePtr stem_, blocks_, final_, head_;
  bool flatten_input_;
};

// MLP(w, L): L weight layers in→w, (L−2)×(w→w), w→classes; hidden layers Linear→BN→act
// (BN optional).
// blocks = the L−2 middle layers.
struct MlpOptions {
  int64_t in = 784, width = 64, depth = 20, classes = 10;
  bool norm = true;
  blocks::Activation activation = blocks::Activation::relu;
};
std::shared_ptr<LabNet> make_mlp(const MlpOptions& o);

// res-MLP(w, B): stem in→w, B two-layer residual units (units.h) w→w, head w→classes.
// Stem: Linear (→BN→act for post-activation placements, →act when norm-free). Pre-activation
// placements end with BN→act (full/relu pre-act) or LN (ln_pre) before the head, as He 2016's appendix.
// Fixup zero-initialises the head and rescales the branches by fixup_init. alpha_min < 1 applies
// the attenuated-identity schedule over the B units (Mix::scaled with λ_s = α_l); drop_path_max
// > 0 stochastic depth with linear decay. With any LAuReL option set (laurel_rw, laurel_rank,
// laurel_k), the units become LaurelBlocks around the same branches (Mix is then ignored).
struct ResMlpOptions {
  int64_t in = 784, width = 64, blocks = 9, classes = 10;
  blocks::UnitPlacement placement = blocks::UnitPlacement::original;
  blocks::Mix mix = blocks::Mix::sum;
  blocks::Shortcut shortcut = blocks::Shortcut::identity;
  bool norm = true;
  blocks::Activation activation = blocks::Activation::relu;
  int64_t hidden = 0;  // branch hidden width (0: width)
  double shortcut_scale = 1.0, branch_scale = 1.0, alpha_init = 0.0, gate_bias = 0.0, carry_bias = 0.0;
  double shortcut_dropout = 0.0;
  bool shortcut_dropout_rescale = false;
  double alpha_min = 1.0;
  double drop_path_max = 0.0;
  bool zero_init_last = false;
  bool laurel_rw = false;
  int64_t laurel_rank = 0, laurel_k = 0, laurel_pa_rank = 0;
};
std::shared_ptr<LabNet> make_res_mlp(const ResMlpOptions& o);

// res-CNN(n): the CIFAR ResNet topology of He et al. 2015 §4.2 (depth 6n+2) built from the units of
// units.h, so every placement, mixing rule and shortcut of the conv domain can be trained from the CLI
// (`resin train --model rescnn:n=9,placement=full_preact`). Stem 3×3 conv (width) → BN → act (conv
// only for pre-activation placements), 3 stages × n units of two 3×3 convs on widths {w, 2w, 4w}
// (stride 2 in the first unit of stages 2 and 3), BN → act for pre-activation placements, global
// average pool, Linear head. shortcut = zero_pad is the paper's option A (same parameters for the
// plain twin, mix = none); projection is option B. With every option at its default, the
// parameter count equals the zoo's resnet20 (n = 3), as the paper's Table 6.
struct ResCnnOptions {
  int64_t in_channels = 1, classes = 10, n = 3, width = 16;
  blocks::UnitPlacement placement = blocks::UnitPlacement::original;
  blocks::Mix mix = blocks::Mix::sum;
  blocks::Shortcut shortcut = blocks::Shortcut::zero_pad;
  bool norm = true;
  blocks::Activation activation = blocks::Activation::relu;
  double shortcut_scale = 1.0, branch_scale = 1.0, alpha_init = 0.0, gate_bias = 0.0, carry_bias = 0.0;
  double shortcut_dropout = 0.0;
  bool shortcut_dropout_rescale = false;
  double drop_path_max = 0.0;
  bool zero_init_last = false;
};
std::shared_ptr<LabNet> make_res_cnn(const ResCnnOptions& o);

// Highway MLP: plain stem Linear(in→w)→act, `layers` highway layers (units.h make_highway), head.
struct HighwayMlpOptions {
  int64_t in = 784, width = 50, layers = 9, classes = 10;
  double gate_bias = -2.0;
  bool carry_gate = false;
  double carry_bias = 2.0;
  blocks::Activation activation = blocks::Activation::relu;
};
std::shared_ptr<LabNet> make_highway_mlp(const HighwayMlpOptions& o);

// Rev-MLP: stem Linear(in→w)→BN→ReLU, a ReversibleSequence of `blocks` RevBlocks whose F and G
// are Linear→BN→ReLU→Linear on w/2 features, head. recompute = false stores activations instead;
// wide_stream carries the reversible stream in f64 (ReversibleOptions::wide_stream).
struct RevMlpOptions {
  int64_t in = 784, width = 64, blocks = 8, classes = 10;
  bool recompute = true;
  bool wide_stream = false;
};
std::shared_ptr<LabNet> make_rev_mlp(const RevMlpOptions& o);

enum class TokenInput {
  rows,     // one token per image row (RowEmbedding)
  patches,  // ViT patches with a [CLS] token (PatchEmbedding)
};
// Encoder-only Transformer classifier: embedding → TransformerEncoder → ClassifierHead (mean pool
// over rows; the [CLS] token for patches). Children "embed", "encoder", "head".
struct TransformerClassifierOptions {
  int64_t in_channels = 1, image_size = 28, classes = 10;
  TokenInput input = TokenInput::rows;
  int64_t patch = 7;
  int64_t dim = 64, depth = 6, heads = 4, ff = 128;
  blocks::Placement placement = blocks::Placement::pre;
  blocks::Activation activation = blocks::Activation::relu;
  double dropout = 0.0, alpha_min = 1.0, drop_path_max = 0.0;
};
class TransformerClassifier : public nn::Module {
 public:
  explicit TransformerClassifier(const TransformerClassifierOptions& o);
  std::string type_name() const override { return "TransformerClassifier"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  blocks::TransformerEncoder& encoder() { return *encoder_; }

 private:
  nn::ModulePtr embed_, head_;
  std::shared_ptr<blocks::TransformerEncoder> encoder_;
};

// ---- names for the CLI
// True for "family:..." specs (and a bare family name) that create_lab_model understands.
bool is_lab_spec(const std::string& name);
// Builds a lab model from `family:key=value,...`; in/classes/image size come from `args` unless the
// spec sets them. Throws resin::Error naming unknown families, unknown keys (with the valid ones)
// and malformed values.
nn::ModulePtr create_lab_model(const std::string& spec, const ModelArgs& args);
// Families and keys, for --help texts.
std::string lab_model_help();
// Named configurations from LAB.md (E1, E2, E5, E6, E8, E9, E11), for the zoo's listing.
std::vector<ZooEntry> lab_zoo_entries();

}  // namespace resin::models
