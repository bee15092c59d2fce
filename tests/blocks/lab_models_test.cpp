// The lab's models: every family builds from a CLI spec and trains (finite gradients), parameter and
// MAC counts match LAB.md's formulas, schedules reach the units, and bad specs are rejected clearly.
#include "resin/models/lab_models.h"
#include "block_test_util.h"
#include "resin/models/zoo.h"

namespace resin::testing {
namespace {

using namespace models;

const ModelArgs kFashion{.in_channels = 1, .num_classes = 10, .image_size = 28};

void expect_trains(const std::string& spec) {
  manual_seed(41);
  auto m = create_model(spec, kFashion);
  Tensor x = randn({4, 1, 28, 28});
  Tensor y = m->forward(x);
  ASSERT_EQ(y.shape(), (Shape{4, 10})) << spec;
  cross_entropy(y, from_vector({1, 2, 3, 4}, {4}, {.dtype = DType::i64})).backward();
  int64_t with_grad = 0;
  for (auto& [n, p] : m->named_parameters()) {
    if (!p.grad().defined()) continue;
    ++with_grad;
    for (double v : p.grad().to_vector()) ASSERT_TRUE(std::isfinite(v)) << spec << ": " << n;
  }
  EXPECT_GT(with_grad, 0) << spec;
}

TEST(LabModels, EveryFamilyBuildsFromASpecAndBackpropagates) {
  for (const char* spec :
       {"mlp:width=16,depth=4",
        "mlp:width=16,depth=3,norm=0,act=gelu",
        "resmlp:width=16,blocks=2",
        "resmlp:width=16,blocks=2,placement=bn_after_add",
        "resmlp:width=16,blocks=2,placement=relu_before_add",
        "resmlp:width=16,blocks=2,placement=relu_preact",
        "resmlp:width=16,blocks=2,placement=full_preact,mix=learned_scale",
        "resmlp:width=16,blocks=2,placement=ln_pre,act=gelu,alpha_min=0.5,zero_init_last=1",
        "resmlp:width=16,blocks=2,placement=fixup",
        "resmlp:width=16,blocks=2,mix=exclusive_gate,gate_bias=-6",
        "resmlp:width=16,blocks=2,mix=shortcut_gate,gate_bias=-6",
        "resmlp:width=16,blocks=2,shortcut=conv1x1",
        "resmlp:width=16,blocks=2,shortcut_dropout=0.5",
        "resmlp:width=16,blocks=2,mix=scaled,shortcut_scale=0.5",
        "resmlp:width=16,blocks=3,placement=full_preact,laurel_rw=1,laurel_rank=4,laurel_k=2,laurel_pa_rank="
        "2",
        "resmlp:width=16,blocks=3,drop_path=0.2",
        "resmlp:width=16,blocks=2,mix=none",
        "highway:width=12,layers=3",
        "highway:width=12,layers=2,carry_gate=1",
        "revmlp:width=16,blocks=2",
        "revmlp:width=16,blocks=2,recompute=0",
        "rowformer:dim=16,depth=2,heads=2,ff=32,norm=post",
        "rowformer:dim=16,depth=2,heads=2,ff=32,norm=peri",
        "rowformer:dim=16,depth=2,heads=2,ff=32,norm=rezero",
        "vit:patch=7,dim=16,depth=2,heads=2,ff=32,norm=pre,act=gelu",
        "rescnn:n=1,width=4",
        "rescnn:n=1,width=4,mix=none",
        "rescnn:n=1,width=4,placement=full_preact,shortcut=projection",
        "rescnn:n=1,width=4,placement=relu_preact,shortcut=avg_projection",
        "rescnn:n=1,width=4,placement=bn_after_add,shortcut=projection_all",
        "rescnn:n=1,width=4,placement=relu_before_add,shortcut=conv1x1",
        "rescnn:n=1,width=4,placement=fixup",
        "rescnn:n=1,width=4,placement=full_preact,norm=0,mix=learned_scale",
        "rescnn:n=1,width=4,mix=exclusive_gate,gate_bias=-2",
        "rescnn:n=1,width=4,mix=shortcut_gate,gate_bias=-6,drop_path=0.2",
        "rescnn:n=2,width=4,mix=scaled,shortcut_scale=0.5,shortcut_dropout=0.5"})
    expect_trains(spec);
}

TEST(LabModels, ResCnnIsTheCifarResNetWithSelectableUnits) {
  // Defaults: option A shortcuts and post-activation units — the paper's ResNet-20, the zoo's resnet20.
  auto zoo20 = create_model("resnet20", kFashion);
  auto res20 = create_model("rescnn:n=3", kFashion);
  auto plain20 = create_model("rescnn:n=3,mix=none", kFashion);
  EXPECT_EQ(res20->parameter_count(), zoo20->parameter_count());
  EXPECT_EQ(plain20->parameter_count(), res20->parameter_count());  // option A adds no parameters
  EXPECT_EQ(count_macs(*res20, 1, 28), count_macs(*zoo20, 1, 28));
  // Units are stacked 3n deep and the stage transitions stride by 2 and double the width.
  auto m = make_res_cnn({.n = 2, .width = 8, .placement = blocks::UnitPlacement::full_preact});
  auto& seq = static_cast<nn::Sequential&>(*m->blocks());
  ASSERT_EQ(seq.size(), 6u);
  const int64_t strides[] = {1, 1, 2, 1, 2, 1}, outs[] = {8, 8, 16, 16, 32, 32};
  for (size_t i = 0; i < 6; ++i) {
    auto& r = static_cast<blocks::Residual&>(*seq[i]);
    EXPECT_EQ(r.options().stride, strides[i]) << i;
    EXPECT_EQ(r.options().out, outs[i]) << i;
  }
  // Projection shortcuts add exactly the two 1×1 conv + BN pairs of option B.
  auto b = create_model("rescnn:n=3,shortcut=projection", kFashion);
  EXPECT_EQ(b->parameter_count() - res20->parameter_count(), (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64));
  // The MLP-only placement and flattened inputs are refused clearly.
  EXPECT_THROW(create_model("rescnn:placement=ln_pre", kFashion), Error);
  EXPECT_THROW(m->forward(randn({2, 784})), Error);
}

TEST(LabModels, CountsMatchLabFormulas) {
  // MLP(w, L): in·w + (L−2)·w² + 10w weights (no bias before BN), BN 2w per hidden layer, head bias 10.
  const int64_t w = 64;
  auto mlp = create_model("mlp:width=64,depth=20", kFashion);
  EXPECT_EQ(mlp->parameter_count(), 784 * w + 18 * w * w + 10 * w + 19 * 2 * w + 10);
  // res-MLP(w, B): MACs ≈ 784w + 2Bw² + 10w (LAB §0); plain/res-20 = 125k MACs.
  auto res = create_model("lab_res20", kFashion);
  EXPECT_EQ(count_macs(*res, 1, 28), 784 * w + 2 * 9 * w * w + 10 * w);
  EXPECT_EQ(count_macs(*mlp, 1, 28), 784 * w + 18 * w * w + 10 * w);
  EXPECT_EQ(res->parameter_count(), mlp->parameter_count());  // E1: identical params within a pair
}

TEST(LabModels, NormFreeReZeroNetworkOutputsItsStem) {
  // LAB E11 P1 on the model: 100 units of x + α·F(x) with α = 0 leave the stem output unchanged.
  manual_seed(42);
  auto m = make_res_mlp({.width = 32,
                         .blocks = 100,
                         .placement = blocks::UnitPlacement::full_preact,
                         .mix = blocks::Mix::learned_scale,
                         .norm = false});
  Tensor x = randn({3, 784});
  Tensor s = m->stem_output(x);
  EXPECT_TRUE(same_values(m->blocks()->forward(s), s));
  // A plain He-initialised norm-free stack of the same depth does not.
  auto plain = make_res_mlp(
      {.width = 32, .blocks = 100, .placement = blocks::UnitPlacement::full_preact, .norm = false});
  Tensor s2 = plain->stem_output(x);
  EXPECT_GT(max_abs_diff(plain->blocks()->forward(s2), s2), 1.0);
}

TEST(LabModels, FixupNetworkStartsWithZeroLogitsAndIdentityBlocks) {
  manual_seed(43);
  auto m = make_res_mlp({.width = 32, .blocks = 10, .placement = blocks::UnitPlacement::fixup});
  Tensor x = randn({3, 784});
  EXPECT_EQ(max_abs(m->forward(x)), 0.0);
  Tensor s = m->stem_output(x);
  EXPECT_TRUE(same_values(m->blocks()->forward(s), s));
}

TEST(LabModels, AttenuationAndDropPathReachTheUnits) {
  auto m = make_res_mlp({.width = 8, .blocks = 5, .alpha_min = 0.6, .drop_path_max = 0.25});
  const auto a = blocks::attenuation_schedule(5, 0.6);
  const auto p = blocks::linear_drop_path(5, 0.25);
  auto& seq = static_cast<nn::Sequential&>(*m->blocks());
  ASSERT_EQ(seq.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    auto& r = static_cast<blocks::Residual&>(*seq[i]);
    EXPECT_EQ(r.options().mix, blocks::Mix::scaled);
    EXPECT_EQ(r.options().shortcut_scale, a[i]);
    EXPECT_EQ(r.options().drop_path, p[i]);
  }
  EXPECT_THROW(make_res_mlp({.width = 8, .blocks = 2, .mix = blocks::Mix::learned_scale, .alpha_min = 0.5}),
               Error);
  EXPECT_THROW(make_res_mlp({.width = 8, .blocks = 2, .laurel_rw = true}),
               Error);  // original unit has a post ReLU
}

TEST(LabModels, SpecsAreValidated) {
  auto message = [](const std::string& spec) {
    try {
      create_model(spec, kFashion);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("resmlp:width=16,blokcs=3").find("keys: "), std::string::npos);
  EXPECT_NE(message("resmlp:width=16,blokcs=3").find("blocks"), std::string::npos);
  EXPECT_NE(message("resmlp:placement=preact").find("full_preact"), std::string::npos);
  EXPECT_NE(message("resmlp:width=abc").find("not a number"), std::string::npos);
  EXPECT_NE(message("resmlp:width=1.5").find("integer"), std::string::npos);
  EXPECT_NE(message("resmlp:width").find("key=value"), std::string::npos);
  EXPECT_NE(message("convnet:width=3").find("families"), std::string::npos);
  EXPECT_NE(message("resmlp:width=8,width=9").find("twice"), std::string::npos);
  EXPECT_TRUE(is_lab_spec("vit:patch=4"));
  EXPECT_FALSE(is_lab_spec("resnet20"));
  EXPECT_NE(lab_model_help().find("laurel_rank"), std::string::npos);
}

TEST(LabModels, NamedEntriesAreInTheZoo) {
  int found = 0;
  for (const auto& e : zoo())
    if (e.name.rfind("lab_", 0) == 0) {
      ++found;
      EXPECT_TRUE(e.family == "lab-mlp" || e.family == "lab-cnn" || e.family == "lab-transformer") << e.name;
    }
  EXPECT_EQ(found, static_cast<int>(lab_zoo_entries().size()));
  manual_seed(44);
  auto vit = create_model("lab_vit7", kFashion);
  EXPECT_EQ(vit->forward(randn({2, 1, 28, 28})).shape(), (Shape{2, 10}));
  auto rev = create_model("lab_rev_mlp8", kFashion);
  EXPECT_EQ(rev->forward(randn({2, 1, 28, 28})).shape(), (Shape{2, 10}));
}

}  // namespace
}  // namespace resin::testing
