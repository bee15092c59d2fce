#!/usr/bin/env bash
# The one script for a GPU machine: configures resin with the CUDA backend, builds test_gpu and
# gpu_bench, runs the GPU tests (kernel parity against the reference backend, gradcheck on the
# GPU, device plumbing, CPU-vs-GPU training parity) and the benchmark against the PyTorch there,
# then `resin train`, `resin lab` and `resin bench` with --device cuda (cli.log), and writes
# everything to $OUT (default out/gpu): run.log, nvidia-smi.txt, test_gpu.log, test_gpu.xml, cli.log,
# bench.jsonl, bench.md (at most 8 files, as the device tool returns).
#
#   tests/gpu/fetch-deps.sh            # first, on the build machine (packages + Fashion-MNIST)
#   tests/gpu/run.sh [all|test|bench]  # then on the GPU machine, from the repository root
#   tests/gpu/run.sh memcheck          # (debugging) kernel parity under compute-sanitizer
#
# Stages have time limits so that `all` ends within ~9 minutes on 16 cores and an H100 (build ~3,
# tests ~3, benchmark ~3); `test` and `bench` split it in two calls (the build is reused).
# Environment: JOBS (nproc), BUILD_DIR (build-gpu), FMNIST_DIR (.gpudeps/fashion-mnist, else
# /usr/share/datasets/fashion-mnist), FMNIST_SECONDS (75 per framework), RESIN_GPU_PARITY_STEPS (300).
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-all}
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
BUILD=${BUILD_DIR:-build-gpu}
exec > >(tee -a "$OUT/run.log") 2>&1
step() { echo "== $(date -u +%FT%TZ) $*"; }
step "resin GPU run ($mode) in $PWD, $(git rev-parse --short HEAD 2>/dev/null || echo 'no git') "
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed"
head -20 "$OUT/nvidia-smi.txt"

# ---- build dependencies the GPU image lacks (see fetch-deps.sh)
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DRESIN_WITH_CUDA=ON -DRESIN_BUILD_BENCH=OFF)
if ls .gpudeps/*.deb > /dev/null 2>&1; then
  prefix=$PWD/.gpudeps/root
  mkdir -p "$prefix"
  for f in .gpudeps/*.deb; do
    if command -v dpkg-deb > /dev/null; then
      dpkg-deb -x "$f" "$prefix"
    else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
      m=$(ar t "$f" | grep '^data\.tar')
      case $m in
        *.xz) ar p "$f" "$m" | tar -xJ -C "$prefix" ;;
        *.gz) ar p "$f" "$m" | tar -xz -C "$prefix" ;;
        *) ar p "$f" "$m" | zstd -dc | tar -x -C "$prefix" ;;
      esac
    fi
  done
  # Debian's absolute .so links (libz.so -> /lib/...) must point into the prefix.
  for l in "$prefix"/usr/lib/x86_64-linux-gnu/*.so; do
    t=$(readlink "$l")
    if [[ $t == /* && -e "$prefix$t" ]]; then ln -sf "$prefix$t" "$l"; fi
  done
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_INCLUDE_PATH="$prefix/usr/include")
  export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
# cuDNN and cuBLAS: the toolkit's when it has them, else PyTorch's wheels (nvidia-cudnn, nvidia-cublas).
wheel_dir() { python3 -c "import nvidia.$1 as m; print(list(m.__path__)[0])" 2>/dev/null; }
if [[ ! -e /usr/local/cuda/include/cudnn.h ]] && d=$(wheel_dir cudnn) && [[ -n "$d" ]]; then
  cmake_args+=(-DCUDNN_INCLUDE_DIR="$d/include" -DCUDNN_LIBRARY="$(ls "$d"/lib/libcudnn.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi
if ! ls /usr/local/cuda/lib64/libcublas.so* > /dev/null 2>&1 && d=$(wheel_dir cublas) && [[ -n "$d" ]]; then
  cmake_args+=(-DCUDA_cublas_LIBRARY="$(ls "$d"/lib/libcublas.so* | head -1)"
               -DCUDA_cublasLt_LIBRARY="$(ls "$d"/lib/libcublasLt.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi

# NCCL (the GPU communicator; its one-GPU tests): the toolkit's, else PyTorch's wheel (nvidia-nccl).
nccl_args=(-DRESIN_WITH_NCCL=OFF)
if [[ -e /usr/local/cuda/include/nccl.h ]] && ls /usr/local/cuda/lib64/libnccl.so* > /dev/null 2>&1; then
  nccl_args=(-DRESIN_WITH_NCCL=ON)
elif d=$(wheel_dir nccl) && [[ -n "$d" && -e "$d/include/nccl.h" ]]; then
  nccl_args=(-DRESIN_WITH_NCCL=ON -DNCCL_INCLUDE_DIR="$d/include" -DNCCL_LIBRARY="$(ls "$d"/lib/libnccl.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi

step "configure + build (test_gpu, gpu_bench, resin) with $JOBS jobs, ${nccl_args[*]}"
t0=$SECONDS
build() {
  timeout 360 cmake -S . -B "$BUILD" -G Ninja "${cmake_args[@]}" "$@" > "$OUT/configure.log" 2>&1 &&
    timeout 360 cmake --build "$BUILD" -j "$JOBS" --target test_gpu gpu_bench resin_cli 2>&1 | tail -30
  return "${PIPESTATUS[0]}"
}
build "${nccl_args[@]}"
build_rc=$?
# A failure with NCCL (not a timeout: a second full build would not fit either) is retried without it.
if [[ $build_rc != 0 && $build_rc != 124 && ${nccl_args[0]} == -DRESIN_WITH_NCCL=ON ]]; then
  step "build with NCCL failed (rc $build_rc): building without it (the NCCL tests are not run)"
  build -DRESIN_WITH_NCCL=OFF
  build_rc=$?
fi
echo "build took $((SECONDS - t0)) s"
if [[ ! -x "$BUILD/tests/gpu/test_gpu" || ! -x "$BUILD/tests/gpu/gpu_bench" ]]; then
  tail -40 "$OUT/configure.log"
  step "build failed (rc $build_rc)"
  exit 1
fi
rm -f "$OUT/configure.log"

rc=0
if [[ $mode == all || $mode == test ]]; then
  step "GPU tests"
  t0=$SECONDS
  OMP_WAIT_POLICY=passive timeout 300 "$BUILD/tests/gpu/test_gpu" --gtest_brief=1 \
    --gtest_output="xml:$OUT/test_gpu.xml" > "$OUT/test_gpu.log" 2>&1
  rc=$?
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[ resnet20|tests? ran|FAILED TEST" "$OUT/test_gpu.log" | head -60
  echo "tests took $((SECONDS - t0)) s, rc $rc"

  # The command-line tools, unchanged, with --device cuda (each must print its result line).
  step "resin train / lab / bench --device cuda"
  fm=${FMNIST_DIR:-}
  [[ -z "$fm" && -d .gpudeps/fashion-mnist ]] && fm=.gpudeps/fashion-mnist
  [[ -z "$fm" && -d /usr/share/datasets/fashion-mnist ]] && fm=/usr/share/datasets/fashion-mnist
  cli_tmp=$(mktemp -d)
  {
    if [[ -z "$fm" ]]; then
      echo "FAILED: no Fashion-MNIST (run tests/gpu/fetch-deps.sh first): resin train and resin lab not run"
    else
      timeout 120 "$BUILD/resin" train --device cuda --data-dir "$fm" --epochs 1 --train-subset 4096 \
        --test-subset 1000 --progress lines --out "$cli_tmp/train" || echo "FAILED: resin train --device cuda"
      timeout 120 "$BUILD/resin" lab e3-ensemble --quick --device cuda --data-dir "$fm" --out "$cli_tmp/lab" ||
        echo "FAILED: resin lab --device cuda"
    fi
    timeout 60 "$BUILD/resin" bench --device cuda --model resnet20 --batch-size 128 --reps 5 ||
      echo "FAILED: resin bench --device cuda"
    timeout 60 "$BUILD/resin" bench --device cuda --model resnet50 --image-size 224 --batch-size 32 --mode infer \
      --reps 5 || echo "FAILED: resin bench --device cuda --mode infer"
  } > "$OUT/cli.log" 2>&1
  grep -E "^result|^e3-ensemble|median|FAILED|error" "$OUT/cli.log" | head -20
  for want in "^result: resnet20" "^e3-ensemble: P1" "resnet20 train f32 on cuda" "resnet50 infer f32 on cuda"; do
    grep -q "$want" "$OUT/cli.log" || { echo "FAILED: no line matching '$want' in cli.log"; rc=1; }
  done
  grep -q FAILED "$OUT/cli.log" && rc=1
  rm -rf "$cli_tmp"
fi

if [[ $mode == memcheck ]]; then  # for debugging a failure: kernel parity under compute-sanitizer
  step "kernel parity under compute-sanitizer memcheck"
  timeout 480 compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/gpu/test_gpu" --gtest_brief=1 \
    --gtest_filter='CudaKernelParity*' > "$OUT/test_gpu.log" 2>&1
  rc=$?
  tail -40 "$OUT/test_gpu.log"
fi

if [[ $mode == all || $mode == bench ]]; then
  fm=${FMNIST_DIR:-}
  [[ -z "$fm" && -d .gpudeps/fashion-mnist ]] && fm=.gpudeps/fashion-mnist
  [[ -z "$fm" && -d /usr/share/datasets/fashion-mnist ]] && fm=/usr/share/datasets/fashion-mnist
  secs=${FMNIST_SECONDS:-75}
  step "benchmark: resnet50 b256 channels-last training; Fashion-MNIST ResNet-20 to 95% (${secs}s cap each; data: ${fm:-none})"
  : > "$OUT/bench.jsonl"
  timeout 300 "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 ${fm:+--fmnist-dir "$fm"} --max-seconds "$secs" \
    >> "$OUT/bench.jsonl" || echo "gpu_bench failed or timed out"
  RESIN_CUDA_TF32=1 timeout 120 "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 >> "$OUT/bench.jsonl" ||
    echo "gpu_bench (TF32) failed or timed out"
  timeout 120 "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 --dtype bf16 >> "$OUT/bench.jsonl" ||
    echo "gpu_bench (bf16) failed or timed out"
  PYTHONUNBUFFERED=1 timeout 300 python3 tests/gpu/bench_torch.py --batch 256 --steps 10 ${fm:+--fmnist-dir "$fm"} \
    --max-seconds "$secs" >> "$OUT/bench.jsonl" || echo "bench_torch.py failed or timed out"
  python3 tests/gpu/bench_table.py "$OUT/bench.jsonl" "$OUT/nvidia-smi.txt" > "$OUT/bench.md"
  cat "$OUT/bench.md"
fi
step "done (test rc $rc)"
exit $rc
