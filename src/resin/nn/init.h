// Initialisers (in place, no autograd), following torch.nn.init's formulas. Each draws from the
// given generator or default_generator().
#pragma once
#include "resin/tensor/tensor.h"

namespace resin::nn::init {

enum class FanMode { fan_in, fan_out };
// fan_in = size(1) * receptive field; fan_out = size(0) * receptive field.
std::pair<int64_t, int64_t> fans(const Tensor& w);
// gain(relu) = sqrt(2); gain(leaky_relu, a) = sqrt(2 / (1 + a^2)); gain(linear/sigmoid) = 1.
double relu_gain();
void kaiming_normal_(Tensor& w, FanMode mode = FanMode::fan_out, double gain = 1.4142135623730951, Generator* g = nullptr);
// PyTorch's default for conv/linear: kaiming_uniform with a (leaky slope) = sqrt(5), fan_in.
void kaiming_uniform_(Tensor& w, double a = 0.0, FanMode mode = FanMode::fan_in, Generator* g = nullptr);
void xavier_uniform_(Tensor& w, double gain = 1.0, Generator* g = nullptr);
void xavier_normal_(Tensor& w, double gain = 1.0, Generator* g = nullptr);
void normal_(Tensor& w, double mean, double std, Generator* g = nullptr);
void uniform_(Tensor& w, double lo, double hi, Generator* g = nullptr);
void constant_(Tensor& w, double value);

// While one is alive on this thread, the random initialisers above fill zeros and draw nothing:
// a module built under it has every parameter's shape at the cost of a memset instead of the
// random draws (seconds for a 138M-parameter VGG), for counting parameters and MACs (`resin zoo`)
// or before loading weights. The generators are left untouched. Nests; constant_ is unaffected.
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;
  static bool active();

 private:
  bool prev_;
};

}  // namespace resin::nn::init
