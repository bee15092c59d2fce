#!/usr/bin/env bash
# Installs the Debian packages resin needs, only those missing. Idempotent.
# Usage: scripts/install-deps.sh [--build-only]
#   --build-only  skip the test-time packages (PyTorch oracle, ONNX test data, ONNX Runtime)
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config libdnnl-dev libgtest-dev googletest
            libbenchmark-dev zlib1g-dev dataset-fashion-mnist libgloo-dev libonnx-dev libprotobuf-dev)
# clang + its runtimes: the libFuzzer runs of `x.sh test` (scripts/fuzz.sh); libclang-rt-14-dev holds
# libFuzzer and the clang sanitizer runtimes, libomp-dev clang's OpenMP.
test_pkgs=(python3 python3-numpy python3-torch python3-torchvision libonnx-testdata clang libclang-rt-14-dev libomp-dev)

pkgs=("${build_pkgs[@]}")
[[ "${1:-}" == "--build-only" ]] || pkgs+=("${test_pkgs[@]}")

# The ONNX export tests run models in ONNX Runtime: the npm package onnxruntime-node (its CPU
# build ships in the tarball; --ignore-scripts skips its optional GPU download), pinned by
# tests/onnx/ort/package-lock.json and installed into .deps/ort. Node.js comes from Debian when
# no npm is on the PATH.
if [[ "${1:-}" != "--build-only" ]] && ! command -v npm >/dev/null; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "resin: installing missing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" != "--build-only" ]]; then
  root=$(cd "$(dirname "$0")/.." && pwd)
  ort_dir="$root/.deps/ort"
  if ! cmp -s "$root/tests/onnx/ort/package-lock.json" "$ort_dir/package-lock.json" ||
     [[ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]]; then
    echo "resin: installing onnxruntime-node into $ort_dir (npm ci)"
    rm -rf "$ort_dir"
    mkdir -p "$ort_dir"
    cp "$root/tests/onnx/ort/package.json" "$root/tests/onnx/ort/package-lock.json" "$ort_dir/"
    (cd "$ort_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
fi
