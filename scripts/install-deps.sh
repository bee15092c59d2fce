#!/usr/bin/env bash
# Installs the Debian packages resin needs, only those missing. Idempotent.
# Usage: scripts/install-deps.sh [--build-only]
#   --build-only  skip the test-time packages (PyTorch oracle)
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config libdnnl-dev libgtest-dev googletest
            libbenchmark-dev zlib1g-dev dataset-fashion-mnist)
# clang + its runtimes: the libFuzzer runs of `x.sh test` (scripts/fuzz.sh); libclang-rt-14-dev holds
# libFuzzer and the clang sanitizer runtimes, libomp-dev clang's OpenMP.
test_pkgs=(python3 python3-numpy python3-torch python3-torchvision clang libclang-rt-14-dev libomp-dev)

pkgs=("${build_pkgs[@]}")
[[ "${1:-}" == "--build-only" ]] || pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "resin: installing missing Debian packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
