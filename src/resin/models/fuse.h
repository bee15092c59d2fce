// Inference-only fused forms of zoo models.
//
// fuse_for_inference(model) returns a module that computes model's eval-mode forward through a
// backend::InferencePlan: every BatchNorm is folded into the convolution before it (w' = w·γ/σ,
// b' = β − μ·γ/σ, computed in double from the running statistics), ReLUs and the residual add
// become post-ops of the convolution that produces them, option-A shortcuts become a fixed 1×1
// convolution (a strided selection with zero channels), and weights are packed into oneDNN's
// layout once. The fused module is a snapshot: later changes to `model`'s parameters or buffers
// are not seen. It records no autograd history, has no parameters, and throws if trained.
//
// Fused: post-activation ResNets (models::ResNet with basic or bottleneck blocks, ImageNet or
// CIFAR stem, projection / zero-pad / identity shortcuts, plain twins) — every resnet*, resnext*,
// wide_resnet* and resnet-cifar entry of the zoo. Anything else, and any model when the oneDNN
// backend is off (RESIN_BACKEND=ref), is returned as it is (check with is_fused_plan()).
#pragma once
#include "resin/nn/module.h"

namespace resin::models {

nn::ModulePtr fuse_for_inference(const nn::ModulePtr& model);
bool is_fused_plan(const nn::Module& m);
// The fused module's compiled steps for its last input (kinds, shapes, oneDNN kernels); "" otherwise.
std::string fused_plan_summary(const nn::Module& m);

}  // namespace resin::models
