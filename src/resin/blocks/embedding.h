// Inputs and outputs of Transformer stacks: token embeddings with learned positions, image patch
// embeddings (ViT, Dosovitskiy et al. 2021), image-row embeddings, and a classification head.
// Every output is [N, T, dim] (batch_first). Learned position tables start as N(0, 0.02²).
#pragma once
#include "resin/nn/layers.h"

namespace resin::blocks {

// y[n, t] = token.weight[idx[n, t]] + pos[t]. idx [N, T] (i64), T <= max_len.
// Child "token" (Embedding), parameter "pos" [max_len, dim].
class TokenEmbedding : public nn::Module {
 public:
  TokenEmbedding(int64_t vocab, int64_t dim, int64_t max_len);
  std::string type_name() const override { return "TokenEmbedding"; }
  Tensor forward(const Tensor& idx) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  int64_t max_len_;
  std::shared_ptr<nn::Embedding> token_;
};

struct PatchEmbeddingOptions {
  int64_t in_channels = 3, image_size = 32, patch = 4, dim = 0;
  bool cls_token = true;  // prepend a learned [CLS] token
};
// x [N, C, H, W] (H = W = image_size, divisible by patch) → [N, P (+1), dim], P = (H/patch)²:
// a patch×patch conv with stride patch (child "proj"), flattened row-major, [CLS] prepended,
// plus "pos_embed" [1, P (+1), dim]; parameter "cls_token" [1, 1, dim] (timm's names).
class PatchEmbedding : public nn::Module {
 public:
  explicit PatchEmbedding(const PatchEmbeddingOptions& o);
  std::string type_name() const override { return "PatchEmbedding"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  int64_t num_tokens() const;

 private:
  PatchEmbeddingOptions o_;
  std::shared_ptr<nn::Conv2d> proj_;
};

// x [N, C, H, W] → H tokens, token h = Linear(x[:, :, h, :] flattened to C·W) + pos[h]
// (a Transformer reading an image row by row). Child "proj", parameter "pos" [H, dim].
class RowEmbedding : public nn::Module {
 public:
  RowEmbedding(int64_t channels, int64_t height, int64_t width, int64_t dim);
  std::string type_name() const override { return "RowEmbedding"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  int64_t c_, h_, w_;
  std::shared_ptr<nn::Linear> proj_;
};

enum class Pool {
  cls,   // token 0 (the [CLS] token)
  mean,  // mean over tokens
};
// [N, T, dim] → pool → (LN) → Linear → [N, classes]. Children "norm" (when norm = true), "fc".
class ClassifierHead : public nn::Module {
 public:
  ClassifierHead(int64_t dim, int64_t classes, Pool pool, bool norm = false);
  std::string type_name() const override { return "ClassifierHead"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;

 private:
  Pool pool_;
  nn::ModulePtr norm_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace resin::blocks
