// Blocks look their own parameters up by name at each use instead of caching tensor handles, so
// replacing a registered tensor (loading weights of another dtype, converting a model) takes
// effect everywhere. A few string compares per call; negligible next to the ops.
#pragma once
#include "resin/nn/module.h"

namespace resin::blocks {

// The parameter `name` registered on m itself, or an undefined tensor.
inline Tensor own_param(const nn::Module& m, const std::string& name) {
  for (auto& [n, t] : const_cast<nn::Module&>(m).own_parameters())
    if (n == name) return t;
  return Tensor();
}

}  // namespace resin::blocks
