// Writes the seed corpora: fuzz_make_corpus DIR (scripts/fuzz.sh --seeds writes fuzz/corpus/).
#include <cstdio>
#include <exception>

#include "targets.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    resin::fuzz::write_seed_corpora(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
