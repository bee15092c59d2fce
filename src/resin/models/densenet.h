// One builder for DenseNet (Huang et al. 2017): torchvision's densenet121/161/169/201 and the
// paper's CIFAR networks — DenseNet (L=40, k=12) with basic layers and no compression, and
// DenseNet-BC (bottleneck layers, compression 0.5), all configuration.
//
// Parameter names follow torchvision: features.{conv0, norm0, denseblock{b}.denselayer{i}.{norm1,
// conv1, norm2, conv2}, transition{b}.{norm, conv}, norm5}, classifier. The CIFAR stem is conv0
// alone (3x3, stride 1: no norm0 or pool0), as in the paper and its reference code.
// Forward: x [N, in_channels, H, W] -> logits [N, num_classes];
//          relu(features(x)) -> global average pool -> classifier.
#pragma once
#include "resin/blocks/dense_blocks.h"
#include "resin/models/resnet.h"

namespace resin::models {

struct DenseNetConfig {
  int64_t growth = 32;                           // k: channels each layer adds
  std::vector<int64_t> blocks = {6, 12, 24, 16};  // layers per dense block
  int64_t init_features = 64;                    // channels of conv0
  int64_t bn_size = 4;                           // bottleneck width bn_size*k; 0: basic layers (no B)
  double compression = 0.5;                      // transition output = floor(in * compression); 1: no C
  StemKind stem = StemKind::imagenet;            // imagenet: 7x7/2 conv + BN + ReLU + 3x3/2 max pool
  double drop_rate = 0.0;
  bool drop_after_every_conv = false;            // the paper's CIFAR placement (see dense_blocks.h)
  int64_t in_channels = 3, num_classes = 1000;
};

class DenseNet : public nn::Module {
 public:
  explicit DenseNet(const DenseNetConfig& c);
  std::string type_name() const override { return "DenseNet"; }
  Tensor forward(const Tensor& x) override;
  nn::OnnxValue export_onnx(nn::OnnxEmitter& g, const nn::OnnxValue& x) override;
  // [N, C] after the final BN-ReLU and global pooling.
  Tensor features(const Tensor& x);
  const DenseNetConfig& config() const { return c_; }
  // The smallest square input the network accepts (each transition halves, flooring): 29 for
  // the ImageNet stem with four blocks, 4 for the CIFAR stem with three. Smaller inputs throw.
  int64_t min_input_size() const { return min_input_; }

 private:
  DenseNetConfig c_;
  int64_t min_input_ = 1;
  std::shared_ptr<blocks::NamedSequential> features_;
  std::shared_ptr<nn::Linear> classifier_;
};

}  // namespace resin::models
