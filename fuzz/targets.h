// Fuzz targets: one function per reader, each taking arbitrary bytes and returning whether the
// reader accepted them. Contract under test: any
// input either parses (and then satisfies the reader's invariants, checked here) or throws
// resin::Error. Anything else — a sanitizer report, another exception type, a hang, an
// invariant violation (reported on stderr, then abort()) — is a bug.
//
// The same functions run in three places: fuzz/fuzz_main.cpp wraps one of them as a libFuzzer
// binary (cmake -DRESIN_FUZZ=ON with clang; scripts/fuzz.sh); tests/fuzz replays the checked-in
// seed corpora (fuzz/corpus/<target>/) and every crash ever found (fuzz/regressions/<target>/)
// through them in the normal and sanitizer test passes; fuzz/make_corpus.cpp writes the seeds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "resin/nn/module.h"
#include "resin/optim/optim.h"

namespace resin::fuzz {

// safetensors: io::parse_safetensors; a parsed file re-serialises to bytes that parse to the same
// tensors and metadata.
bool fuzz_safetensors(const uint8_t* data, size_t size);
// The JSON reader (safetensors headers, configs, metrics records): io::parse_json; a parsed value's
// string members re-quote and parse back unchanged.
bool fuzz_json(const uint8_t* data, size_t size);
// IDX images/labels, optionally gzip-compressed. The first byte picks the mode: bit 0 images or
// labels, bit 1 whether labels are bounded by 10 classes, bit 2 whether the name ends in ".gz".
bool fuzz_idx(const uint8_t* data, size_t size);
// CIFAR binary records (optionally gzip). The first byte picks CIFAR-10 (1 label byte) or
// CIFAR-100 (2 label bytes, coarse or fine).
bool fuzz_cifar(const uint8_t* data, size_t size);
// The training-state file: train::parse_checkpoint, then restore_training_state into a small
// fixed model/optimizer/schedule (the seeds are checkpoints of exactly that setup), then a few
// generator draws from the restored state.
bool fuzz_checkpoint(const uint8_t* data, size_t size);
// The command-line parser with `resin train`'s option set: the input, split at NUL bytes, is argv;
// after a successful parse every typed getter is called.
bool fuzz_cli(const uint8_t* data, size_t size);

using FuzzTarget = bool (*)(const uint8_t*, size_t);
// Every target by name ("safetensors", "json", ...).
const std::map<std::string, FuzzTarget>& fuzz_targets();

// The fixed training setup of fuzz_checkpoint (an MLP 16-8-8-4 with BN, Nesterov SGD, warm-up +
// cosine schedule; manual_seed(1)) and one SGD step of it on a fixed batch.
struct TrainingSetup {
  nn::ModulePtr model;
  std::unique_ptr<optim::Sgd> opt;
  std::unique_ptr<optim::LrScheduler> sched;
};
TrainingSetup make_training_setup();
void train_step(TrainingSetup& s);

// Writes the seed corpora into dir/<target>/ (make_corpus.cpp).
void write_seed_corpora(const std::string& dir);

}  // namespace resin::fuzz
