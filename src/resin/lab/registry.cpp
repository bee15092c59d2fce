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
