// Transformer blocks beyond torch's coverage: the peri-LN and ReZero placements by formula, the
// causal flag, attenuated and stochastic-depth stacks, embeddings and the classification head.
#include "resin/blocks/transformer.h"
#include "block_test_util.h"
#include "resin/backend/backend.h"
#include "resin/blocks/embedding.h"

namespace resin::testing {
namespace {

using namespace blocks;

TransformerLayerOptions opts(Placement p) { return {.dim = 8, .heads = 2, .ff = 16, .placement = p}; }

Tensor ffn_of(nn::Module& layer, const Tensor& x) {
  return layer.child("linear2")->forward(relu(layer.child("linear1")->forward(x)));
}
Tensor attn_of(nn::Module& layer, const Tensor& x) { return layer.child("self_attn")->forward(x); }

TEST(Transformer, PlacementsComputeTheirFormulas) {
  manual_seed(31);
  Tensor x = randn({2, 5, 8});
  for (Placement p : {Placement::post, Placement::pre, Placement::peri}) {
    TransformerEncoderLayer l(opts(p));
    auto N = [&](const char* n, const Tensor& t) { return l.child(n)->forward(t); };
    Tensor want;
    if (p == Placement::post) {  // x ← LN(x + F(x))
      Tensor h = N("norm1", x + attn_of(l, x));
      want = N("norm2", h + ffn_of(l, h));
    } else if (p == Placement::pre) {  // x ← x + F(LN(x))
      Tensor h = x + attn_of(l, N("norm1", x));
      want = h + ffn_of(l, N("norm2", h));
    } else {  // x ← x + LN'(F(LN(x)))
      Tensor h = x + N("out_norm1", attn_of(l, N("norm1", x)));
      want = h + N("out_norm2", ffn_of(l, N("norm2", h)));
    }
    EXPECT_LT(max_abs_diff(l.forward(x), want), 1e-5) << placement_name(p);
  }
}

TEST(Transformer, ReZeroLayerIsTheIdentityAtInit) {
  manual_seed(32);
  TransformerEncoderLayer l(opts(Placement::rezero));
  Tensor x = randn({2, 5, 8});
  EXPECT_TRUE(same_values(l.forward(x), x));
  std::vector<std::string> names;
  for (auto& [n, _] : l.named_parameters())
    if (n.find("norm") != std::string::npos) names.push_back(n);
  EXPECT_TRUE(names.empty()) << "ReZero layers have no LayerNorm";
  TransformerDecoderLayer d(opts(Placement::rezero));
  EXPECT_TRUE(same_values(d.forward(x, randn({2, 3, 8})), x));
}

TEST(Transformer, CausalFlagEqualsTheExplicitMaskAndHidesTheFuture) {
  manual_seed(33);
  MultiheadAttention m({.dim = 8, .heads = 2});
  Tensor x = randn({2, 6, 8});
  Tensor a = m.forward(x, x, x, {.causal = true});
  Tensor b = m.forward(x, x, x, {.attn_mask = causal_mask(6, 6)});
  EXPECT_TRUE(same_values(a, b));
  // Changing the last token leaves every earlier output unchanged.
  Tensor x2 = x.clone();
  {
    NoGradGuard ng;
    Tensor last = x2.narrow(1, 5, 1);
    backend::backend_for(last).copy(randn({2, 1, 8}), last);
  }
  Tensor c = m.forward(x2, x2, x2, {.causal = true});
  EXPECT_TRUE(same_values(a.narrow(1, 0, 5).contiguous(), c.narrow(1, 0, 5).contiguous()));
  EXPECT_GT(max_abs_diff(a.narrow(1, 5, 1).contiguous(), c.narrow(1, 5, 1).contiguous()), 1e-4);
  // Attention weights: rows sum to 1 and vanish above the diagonal.
  Tensor w;
  m.forward(x, x, x, {.causal = true}, &w);
  EXPECT_EQ(w.shape(), (Shape{2, 6, 6}));
  for (double s : sum(w, {2}).to_vector()) EXPECT_NEAR(s, 1.0, 1e-6);
  EXPECT_EQ(w.select(0, 0).select(0, 0).select(0, 3).item(), 0.0);  // query 0 never sees key 3
  EXPECT_GT(w.select(0, 1).select(0, 3).select(0, 3).item(), 0.0);
  EXPECT_THROW(m.forward(x, randn({2, 4, 8}), randn({2, 4, 8}), {.causal = true}), Error);
}

TEST(Transformer, StackAppliesAttenuationAndDropPathSchedules) {
  manual_seed(34);
  TransformerEncoder e({.layer = opts(Placement::pre), .layers = 3, .alpha_min = 0.4, .drop_path_max = 0.3});
  const auto a = attenuation_schedule(6, 0.4);
  // With a ← α_l and drop-path off in eval, layer l computes α x + F(LN(x)) per sublayer.
  e.eval();
  Tensor x = randn({2, 4, 8});
  Tensor h = x;
  for (size_t l = 0; l < 3; ++l) {
    auto& L = e.layer(l);
    h = a[2 * l] * h + attn_of(L, L.child("norm1")->forward(h));
    h = a[2 * l + 1] * h + ffn_of(L, L.child("norm2")->forward(h));
  }
  EXPECT_LT(max_abs_diff(e.forward(x), e.child("norm")->forward(h)), 1e-5);
  // In training, drop-path makes outputs random per sample; the last layer drops with p = 0.3.
  e.train();
  Tensor xb = randn({64, 4, 8});  // 64 samples: two runs cannot drop the same paths by chance
  Tensor y1 = e.forward(xb), y2 = e.forward(xb);
  EXPECT_GT(max_abs_diff(y1, y2), 1e-6);
  EXPECT_THROW(e.layer(0).set_shortcut_scale(2, 1.0), Error);
}

TEST(Transformer, FinalNormByPlacement) {
  auto has_norm = [](Placement p) {
    TransformerEncoder e({.layer = opts(p), .layers = 1});
    for (auto& [n, _] : e.children())
      if (n == "norm") return true;
    return false;
  };
  EXPECT_FALSE(has_norm(Placement::post));
  EXPECT_TRUE(has_norm(Placement::pre));
  EXPECT_TRUE(has_norm(Placement::peri));
  EXPECT_FALSE(has_norm(Placement::rezero));
  EXPECT_EQ(parse_norm_placement("peri"), Placement::peri);
  EXPECT_THROW(parse_norm_placement("sandwich"), Error);
}

TEST(Transformer, Embeddings) {
  manual_seed(35);
  TokenEmbedding tok(11, 8, 7);
  Tensor idx = from_vector({1, 2, 3, 10, 0, 0}, {2, 3}, {.dtype = DType::i64});
  Tensor e = tok.forward(idx);
  EXPECT_EQ(e.shape(), (Shape{2, 3, 8}));
  Tensor w, pos;
  for (auto& [n, p] : tok.named_parameters()) (n == "pos" ? pos : w) = p;
  // y[1, 0] = W[10] + pos[0]
  EXPECT_LT(max_abs_diff(e.select(0, 1).select(0, 0), w.select(0, 10) + pos.select(0, 0)), 1e-7);
  EXPECT_THROW(tok.forward(zeros({1, 8}, {.dtype = DType::i64})), Error);

  PatchEmbedding pe({.in_channels = 1, .image_size = 28, .patch = 7, .dim = 8});
  EXPECT_EQ(pe.num_tokens(), 17);
  Tensor img = randn({2, 1, 28, 28});
  Tensor t = pe.forward(img);
  EXPECT_EQ(t.shape(), (Shape{2, 17, 8}));
  // Token 1 + r·4 + c is patch (r, c): conv over that window plus its position.
  Tensor conv_out = pe.child("proj")->forward(img);  // [2, 8, 4, 4]
  Tensor pos_embed;
  for (auto& [n, p] : pe.named_parameters())
    if (n == "pos_embed") pos_embed = p;
  Tensor want = conv_out.select(2, 1).select(2, 2) + pos_embed.select(0, 0).select(0, 1 + 1 * 4 + 2);
  EXPECT_LT(max_abs_diff(t.select(1, 1 + 1 * 4 + 2), want), 1e-6);
  EXPECT_THROW(PatchEmbedding({.image_size = 30, .patch = 7, .dim = 8}), Error);

  RowEmbedding re(1, 28, 28, 8);
  EXPECT_EQ(re.forward(img).shape(), (Shape{2, 28, 8}));
  ClassifierHead head(8, 10, Pool::cls, true);
  EXPECT_EQ(head.forward(t).shape(), (Shape{2, 10}));
}

}  // namespace
}  // namespace resin::testing
