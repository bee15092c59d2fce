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

}  // namespace resin::nn::init
