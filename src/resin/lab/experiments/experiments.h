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

// ---- Trained experiments (lab_training.h): `trains = true`, listed after the deterministic ones.
namespace resin::lab {

std::vector<Experiment> trained_experiments();  // registry.cpp

Experiment make_e1_degradation();  // e1_degradation.cpp
Experiment make_e2a_shortcuts();   // e2_shortcuts.cpp
Experiment make_e2b_placement();   // e2_shortcuts.cpp
Experiment make_e3_ensemble();     // e3_ensemble.cpp
Experiment make_e5_highway();      // e5_highway.cpp
Experiment make_e6b_warmup();      // e6b_warmup.cpp
Experiment make_e7_decayed();      // e7_decayed.cpp
Experiment make_e8_laurel();       // e8_laurel.cpp
Experiment make_e9_reversible_trained();  // e9_reversible_trained.cpp
Experiment make_e10a_width();      // e10_width.cpp
Experiment make_e10b_cardinality();  // e10_width.cpp
Experiment make_e11_normfree();    // e11_normfree.cpp
}  // namespace resin::lab
