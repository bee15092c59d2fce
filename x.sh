#!/usr/bin/env bash
# The two README commands.
#   ./x.sh train [resin train options]   install what is missing, build Release, train ResNet-20 on
#                                         Fashion-MNIST and report the test accuracy
#   ./x.sh test                           install what is missing, build, run the whole test suite
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

configure_and_build() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

cmd=${1:-}
shift || true
case "$cmd" in
  train)
    scripts/install-deps.sh --build-only
    configure_and_build "$BUILD_DIR" -DRESIN_BUILD_TESTS=OFF -DRESIN_BUILD_BENCH=OFF
    exec "$BUILD_DIR/resin" train --model resnet20 --data fashion-mnist --out runs/resnet20-fashion "$@"
    ;;
  test)
    scripts/install-deps.sh
    configure_and_build "$BUILD_DIR"
    # Serial: each test binary already uses every core through OpenMP.
    (cd "$BUILD_DIR" && ctest --output-on-failure)
    if [[ -x /usr/local/cuda/bin/nvcc && "${RESIN_SKIP_CUDA:-0}" != 1 ]]; then
      # The CUDA backend compiles and links everywhere nvcc is; CI has no GPU, so test_gpu's tests
      # skip, and test_tensor checks the "no CUDA device" errors of a CUDA build without one.
      # test_gpu_emulated runs the same tests on the emulated GPU: the backend's host code and its
      # kernels on the CPU, with CPU models of the CUDA runtime, cuBLAS, cuDNN and NCCL (docs/cuda.md).
      # GPU machines run tests/gpu/run.sh instead.
      cuda_dir="${BUILD_DIR}-cuda"
      nccl=OFF
      if [[ -e /usr/local/cuda/include/nccl.h ]] && ls /usr/local/cuda/lib64/libnccl.so* > /dev/null 2>&1; then nccl=ON; fi
      cmake -S . -B "$cuda_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRESIN_WITH_CUDA=ON -DRESIN_BUILD_BENCH=OFF \
        -DRESIN_WITH_NCCL=$nccl >/dev/null
      cmake --build "$cuda_dir" -j "$JOBS" --target test_gpu test_gpu_emulated gpu_bench gpu_bench_emulated test_tensor
      # -j: the emulated GPU's tests are mostly single-threaded (shards of one binary).
      (cd "$cuda_dir" && ctest --output-on-failure -j "$JOBS" -R '^(gpu|gpu_emulated.*|gpu_bench_smoke|tensor)$')
    fi
    if [[ "${RESIN_SKIP_SANITIZE:-0}" != 1 ]]; then
      # The unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer (the slow
      # end-to-end folders — parity, models, train, cli — run only in the Release pass above).
      # clang at -O1 with line tables (enough for symbolised reports): this build compiled about
      # five times faster than g++'s -O2 -g with the same sanitizers (docs/reliability.md).
      san_dir="${BUILD_DIR}-asan"
      cmake -S . -B "$san_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DRESIN_SANITIZE=ON -DRESIN_BUILD_BENCH=OFF >/dev/null
      san_tests=(autograd tensor ops backend io data optim nn fuzz)
      # The ONNX importer's fuzz tests (tests/onnx_fuzz), when resin is built with ONNX support. (The
      # target list is read whole first: `ninja ... | grep -q` under pipefail fails whenever grep
      # exits before ninja has written everything, which dropped onnx_fuzz from some runs.)
      san_targets=$(ninja -C "$san_dir" -t targets all 2>/dev/null)
      if grep -q "^test_onnx_fuzz:" <<<"$san_targets"; then
        san_tests+=(onnx_fuzz)
      fi
      cmake --build "$san_dir" -j "$JOBS" --target "${san_tests[@]/#/test_}"
      regex="^($(IFS='|'; echo "${san_tests[*]}"))\$"
      (cd "$san_dir" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -R "$regex")
    fi
    if [[ "${RESIN_SKIP_TSAN:-0}" != 1 ]]; then
      # The data loader's worker threads under ThreadSanitizer (its own small build). libgomp is not
      # instrumented, so TSan cannot see its synchronisation: one OpenMP thread, so that the loader's
      # own std::threads are what is checked.
      tsan_dir="${BUILD_DIR}-tsan"
      cmake -S . -B "$tsan_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESIN_TSAN=ON \
        -DRESIN_BUILD_TESTS=OFF -DRESIN_BUILD_BENCH=OFF >/dev/null
      cmake --build "$tsan_dir" -j "$JOBS" --target tsan_loader
      OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive \
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        "$tsan_dir/tsan_loader" --gtest_brief=1
    fi
    if [[ "${RESIN_SKIP_FUZZ:-0}" != 1 ]]; then
      # libFuzzer: every reader for RESIN_FUZZ_SECONDS each (long runs: docs/reliability.md).
      scripts/fuzz.sh "${RESIN_FUZZ_SECONDS:-10}"
    fi
    ;;
  *)
    echo "usage: ./x.sh train [resin train options] | ./x.sh test" >&2
    exit 2
    ;;
esac
