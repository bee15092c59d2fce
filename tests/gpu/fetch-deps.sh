#!/usr/bin/env bash
# Run HERE (the Debian 12 build machine), before handing tests/gpu/run.sh to a GPU machine.
# A GPU machine's image has nvcc, cuDNN/cuBLAS (toolkit or PyTorch's wheels), CMake, ninja, g++ and
# PyTorch, but not resin's other build dependencies, and it cannot download anything. This puts
# the Debian packages resin needs (oneDNN 2.6, GoogleTest, zlib headers) and a copy of
# Fashion-MNIST into .gpudeps/ (ignored by git, about 40 MB); carry that folder with the run:
#   device run:  carry [".gpudeps"], command "tests/gpu/run.sh"
# run.sh unpacks the packages into $BUILD_DIR-deps (build-gpu-deps, outside .gpudeps) and builds
# against them.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpudeps
cd .gpudeps
apt-get download libdnnl2 libdnnl-dev ocl-icd-libopencl1 libgtest-dev zlib1g zlib1g-dev
if [[ -d /usr/share/datasets/fashion-mnist ]]; then
  mkdir -p fashion-mnist
  cp /usr/share/datasets/fashion-mnist/*-ubyte.gz fashion-mnist/
fi
du -sh .
