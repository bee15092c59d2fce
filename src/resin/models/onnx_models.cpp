// ONNX forms (export_onnx) of the zoo's networks and the lab's models.
#include "resin/models/densenet.h"
#include "resin/models/lab_models.h"
#include "resin/models/resnet.h"
#include "resin/models/vgg.h"
#include "resin/nn/onnx_layers.h"

namespace resin::models {

using nn::OnnxEmitter;
using nn::OnnxValue;
namespace emit = nn::emit;

OnnxValue ResNet::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4 && x.shape()[1] == c_.in_channels, "ResNet: expected input [N, ", c_.in_channels,
              ", H, W], got ", x.shape());
  OnnxValue h = g.module(*conv1_, x);
  if (!c_.preact) h = emit::relu(g, g.module(*bn1_, h));
  if (c_.stem == StemKind::imagenet)
    h = emit::max_pool2d(g, h, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
  for (auto& stage : stages_) h = g.module(*stage, h);
  if (c_.preact) h = emit::relu(g, g.module(*bn_final_, h));
  h = emit::flatten(g, emit::adaptive_avg_pool2d(g, h, 1, 1), 1, -1);
  return g.module(*fc_, h);
}

OnnxValue DenseNet::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4 && x.shape()[1] == c_.in_channels && x.shape()[2] >= min_input_ &&
                  x.shape()[3] >= min_input_,
              "DenseNet: expected input [N, ", c_.in_channels, ", H, W] with H, W >= ", min_input_, ", got ",
              x.shape());
  OnnxValue h = emit::relu(g, g.module(*features_, x));
  return g.module(*classifier_, emit::flatten(g, emit::adaptive_avg_pool2d(g, h, 1, 1), 1, -1));
}

OnnxValue VGG::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4 && x.shape()[1] == c_.in_channels && x.shape()[2] >= 32 && x.shape()[3] >= 32,
              "VGG: expected input [N, ", c_.in_channels, ", H, W] with H, W >= 32, got ", x.shape());
  OnnxValue h = emit::adaptive_avg_pool2d(g, g.module(*features_, x), 7, 7);
  return g.module(*classifier_, emit::flatten(g, h, 1, -1));
}

OnnxValue LabNet::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() >= 2, type_name(), ": expected [N, ...] input, got ", x.shape());
  RESIN_CHECK(flatten_input_ || x.dim() == 4, type_name(), ": expected [N, C, H, W] input, got ", x.shape());
  OnnxValue h = g.module(*stem_, x.dim() == 2 || !flatten_input_ ? x : emit::flatten(g, x, 1, -1));
  h = g.module(*blocks_, h);
  if (final_) h = g.module(*final_, h);
  return g.module(*head_, h);
}

OnnxValue TransformerClassifier::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  return g.module(*head_, g.module(*encoder_, g.module(*embed_, x)));
}

}  // namespace resin::models
