// The built-in experiments, in the order `resin lab list` and `resin lab all` show them. Each
// experiment is made by a factory in experiments/ and listed here explicitly (resin is a static
// library: self-registering objects would be dropped by the linker).
#include "resin/lab/experiments/experiments.h"

namespace resin::lab {

std::vector<Experiment> builtin_experiments() {
  return {make_e2_identity(),        make_e3_paths(),       make_e4_shattered(),
          make_e6a_layernorm_init(), make_e8_laurel_init(), make_e9_reversible(),
          make_e10b_counts(),        make_e11_init(),       make_bottleneck_params()};
}

}  // namespace resin::lab

// The trained experiments (experiments/lab_training.h), appended to the registry after the
// deterministic ones (experiment.cpp).
namespace resin::lab {

std::vector<Experiment> trained_experiments() {
  return {make_e1_degradation(), make_e2a_shortcuts(), make_e2b_placement(), make_e3_ensemble(), make_e5_highway(),
          make_e6b_warmup(),     make_e7_decayed(),     make_e8_laurel(),    make_e9_reversible_trained(), make_e10a_width(),   make_e10b_cardinality(),
          make_e11_normfree()};
}

}  // namespace resin::lab
