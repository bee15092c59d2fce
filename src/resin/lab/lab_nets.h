// Networks only the lab needs (the rest live in models/lab_models.h).
#pragma once
#include "resin/models/lab_models.h"

namespace resin::lab {

// ResNeXt's aggregated transformations (Xie et al. 2017, form (a)) in the MLP domain: the branch is
// BN(Σ_{i=1..C} T_i(x)), T_i = Linear(D→d) → BN → ReLU → Linear(d→d) → BN → ReLU → Linear(d→D),
// all Linear without bias. Weights per branch: C·(2Dd + d²), the count of a bottleneck block whose
// middle layer is block-diagonal with C groups (LAB §10 E10b). Children "paths.0".."paths.{C−1}", "bn".
class AggregatedBranch : public nn::Module {
 public:
  AggregatedBranch(int64_t features, int64_t cardinality, int64_t group_width);
  std::string type_name() const override { return "AggregatedBranch"; }
  std::string extra_repr() const override;
  Tensor forward(const Tensor& x) override;

 private:
  int64_t c_, d_;
  std::vector<nn::ModulePtr> paths_;
  nn::ModulePtr bn_;
};

// ResNeXt-MLP: stem Linear(in→width) → BN → ReLU, `blocks` units y = relu(x + AggregatedBranch(x)),
// head Linear(width→classes). (C, d) = (1, 64), (2, 35), (4, 19), (8, 10) keep ≈ 20.5k weights per
// block at width 128.
struct ResNextMlpOptions {
  int64_t in = 784, width = 128, blocks = 8, classes = 10;
  int64_t cardinality = 1, group_width = 64;
};
std::shared_ptr<models::LabNet> make_resnext_mlp(const ResNextMlpOptions& o);

}  // namespace resin::lab
