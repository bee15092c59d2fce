// Factories of the built-in lab experiments (one file per claim or group; registry.cpp lists them).
#pragma once
#include "resin/lab/experiment.h"

namespace resin::lab {

std::vector<Experiment> builtin_experiments();

// Deterministic (no training): run in CI through tests/lab.
Experiment make_e2_identity();         // init_identities.cpp
Experiment make_e3_paths();            // counting.cpp
Experiment make_e4_shattered();        // e4_shattered.cpp
Experiment make_e6a_layernorm_init();  // e6a_layernorm.cpp
Experiment make_e8_laurel_init();      // init_identities.cpp
Experiment make_e9_reversible();       // e9_reversible.cpp
Experiment make_e10b_counts();         // counting.cpp
Experiment make_e11_init();            // init_identities.cpp
Experiment make_bottleneck_params();   // counting.cpp

}  // namespace resin::lab
