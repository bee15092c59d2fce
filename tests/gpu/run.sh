#!/usr/bin/env bash
# The one script for a GPU machine: configures resin with the CUDA backend, builds test_gpu and
# gpu_bench, runs the GPU tests (kernel parity against the reference backend, gradcheck on the
# GPU, device plumbing, CPU-vs-GPU training parity) and the benchmark against the PyTorch there,
# then `resin train`, `resin lab` and `resin bench` with --device cuda (cli.log), and writes
# everything to $OUT (default out/gpu): run.log, nvidia-smi.txt, test_gpu.log, cli.log, bench.jsonl,
# bench.md (at most 8 files, as the device tool returns).
#
#   tests/gpu/fetch-deps.sh            # first, on the build machine (packages + Fashion-MNIST)
#   tests/gpu/run.sh [all|test|bench]  # then on the GPU machine, from the repository root
#   tests/gpu/run.sh memcheck          # (debugging) kernels under compute-sanitizer memcheck, racecheck, synccheck
#
# The whole script ends by DEADLINE seconds after it starts (default 570: the device tool stops a
# command at 600 s; call it with timeout_s 590). Every stage has its own limit, clamped to leave the
# later stages their minimum; a stage with no time left is reported SKIPPED, never silently dropped.
# Order: build, GPU kernel tests, the other GPU tests, the benchmark, NCCL tests, the CLI.
# The tests run in three processes (kernels; models and training; NCCL), so that a sticky CUDA
# error in one group (an illegal address poisons the rest of its process) cannot hide the others.
# Environment: JOBS (nproc), BUILD_DIR (build-gpu), DEADLINE (570), FMNIST_DIR (.gpudeps/fashion-mnist,
# else /usr/share/datasets/fashion-mnist), FMNIST_SECONDS (60 per framework), RESIN_GPU_PARITY_STEPS (300).
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-all}
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
JOBS=${JOBS:-$(nproc)}
BUILD=${BUILD_DIR:-build-gpu}
DEADLINE=${DEADLINE:-570}
exec > >(tee -a "$OUT/run.log") 2>&1
tee_pid=$!
# Flush tee before the tool collects $OUT (it is not waited for otherwise).
trap 'exec >&- 2>&-; wait "$tee_pid" 2> /dev/null' EXIT
step() { echo "== $(date -u +%FT%TZ) [$SECONDS s] $*"; }
# limit CAP RESERVE: a stage's time limit, CAP seconds or less, so that RESERVE seconds stay for the
# stages after it (and 10 for `timeout -k 10` to kill what ignores SIGTERM); 0 when under 15 s would
# be left (the stage is skipped: `timeout 0` would mean no limit at all).
limit() {
  local l=$((DEADLINE - SECONDS - $2 - 10))
  ((l > $1)) && l=$1
  ((l < 15)) && l=0
  echo "$l"
}
# within CAP RESERVE WHAT COMMAND...: runs COMMAND under limit CAP RESERVE, or says it was skipped.
within() {
  local t
  t=$(limit "$1" "$2")
  local what=$3
  shift 3
  if ((t == 0)); then
    echo "SKIPPED (no time left before the ${DEADLINE}s deadline): $what" >&2
    return 124
  fi
  timeout -k 10 "$t" "$@"
  local r=$?
  ((r == 124)) && echo "TIMED OUT after ${t}s: $what" >&2
  return "$r"
}
step "resin GPU run ($mode) in $PWD, $(git rev-parse --short HEAD 2>/dev/null || echo 'no git') "
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed"
head -20 "$OUT/nvidia-smi.txt"

# ---- build dependencies the GPU image lacks (see fetch-deps.sh)
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DRESIN_WITH_CUDA=ON -DRESIN_BUILD_BENCH=OFF)
if ls .gpudeps/*.deb > /dev/null 2>&1; then
  prefix=$PWD/$BUILD-deps  # not inside .gpudeps, which must stay small enough to carry
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
# cuDNN, cuBLAS and NCCL: the toolkit's when it has them, else PyTorch's wheels. wheel_root LIB prints
# the folder holding lib/LIB.so* and include/ in an nvidia wheel: nvidia/cudnn, nvidia/nccl, or the
# CUDA 13 wheels' shared nvidia/cu13 (cuBLAS).
wheel_root() {
  python3 - "$1" << 'PY' 2> /dev/null
import glob, os, sys
import nvidia
for base in nvidia.__path__:
    for lib in sorted(glob.glob(os.path.join(base, "*", "lib", sys.argv[1] + ".so*"))):
        print(os.path.dirname(os.path.dirname(lib)))
        sys.exit(0)
sys.exit(1)
PY
}
if [[ ! -e /usr/local/cuda/include/cudnn.h ]] && d=$(wheel_root libcudnn); then
  cmake_args+=(-DCUDNN_INCLUDE_DIR="$d/include" -DCUDNN_LIBRARY="$(ls "$d"/lib/libcudnn.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi
if ! ls /usr/local/cuda/lib64/libcublas.so* > /dev/null 2>&1 && d=$(wheel_root libcublas); then
  cmake_args+=(-DCUDA_cublas_LIBRARY="$(ls "$d"/lib/libcublas.so* | head -1)"
               -DCUDA_cublasLt_LIBRARY="$(ls "$d"/lib/libcublasLt.so* | head -1)")
  [[ -e /usr/local/cuda/include/cublas_v2.h ]] ||
    cmake_args+=(-DCMAKE_CXX_FLAGS="-I$d/include" -DCMAKE_CUDA_FLAGS="-I$d/include")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi
nccl_args=(-DRESIN_WITH_NCCL=OFF)
if [[ -e /usr/local/cuda/include/nccl.h ]] && ls /usr/local/cuda/lib64/libnccl.so* > /dev/null 2>&1; then
  nccl_args=(-DRESIN_WITH_NCCL=ON)
elif d=$(wheel_root libnccl) && [[ -e "$d/include/nccl.h" ]]; then
  nccl_args=(-DRESIN_WITH_NCCL=ON -DNCCL_INCLUDE_DIR="$d/include" -DNCCL_LIBRARY="$(ls "$d"/lib/libnccl.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib:${LD_LIBRARY_PATH:-}
fi

step "configure + build (test_gpu, gpu_bench, resin) with $JOBS jobs, ${nccl_args[*]}"
t0=$SECONDS
build() {
  within 360 120 "configure" cmake -S . -B "$BUILD" -G Ninja "${cmake_args[@]}" "$@" > "$OUT/configure.log" 2>&1 ||
    return $?
  within 420 120 "build" cmake --build "$BUILD" -j "$JOBS" --target test_gpu gpu_bench resin_cli 2>&1 | tail -30
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

fm=${FMNIST_DIR:-}
[[ -z "$fm" && -d .gpudeps/fashion-mnist ]] && fm=.gpudeps/fashion-mnist
[[ -z "$fm" && -d /usr/share/datasets/fashion-mnist ]] && fm=/usr/share/datasets/fashion-mnist

# test_group NAME CAP RESERVE FILTER: one process of test_gpu, appended to test_gpu.log.
kernels='CudaKernelParity*:Ops/GpuGradcheck.*:GradcheckPlacement.*:CudaDevice.*'
test_group() {
  step "GPU tests: $1"
  local t0=$SECONDS
  echo "==== $1: --gtest_filter=$4" >> "$OUT/test_gpu.log"
  OMP_WAIT_POLICY=passive within "$2" "$3" "test_gpu ($1)" "$BUILD/tests/gpu/test_gpu" --gtest_filter="$4" \
    >> "$OUT/test_gpu.log" 2>&1
  local r=$?
  # The summary of this group: the log from its header on.
  sed -n "/^==== $1:/,\$p" "$OUT/test_gpu.log" |
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[ resnet20|tests? ran|FAILED TEST|^SKIPPED|^TIMED OUT" | head -40
  echo "$1 took $((SECONDS - t0)) s, rc $r"
  ((r != 0)) && rc=1
  return 0
}

# What the later stages need at least (seconds): the benchmark; the NCCL tests and the CLI.
bench_need=0 tail_need=0
[[ $mode == all || $mode == bench ]] && bench_need=150
[[ $mode == all || $mode == test ]] && tail_need=60
rc=0
if [[ $mode == all || $mode == test ]]; then
  : > "$OUT/test_gpu.log"
  test_group kernels 150 $((60 + bench_need + tail_need)) "$kernels"
  test_group models 180 $((bench_need + tail_need)) "-$kernels:CudaNccl.*:DistWorker.*"
fi

if [[ $mode == all || $mode == bench ]]; then
  budget=$(limit 240 "$tail_need")
  secs=${FMNIST_SECONDS:-60}
  ((secs > (budget - 90) / 2)) && secs=$(((budget - 90) / 2))
  fmnist=()
  fm_secs=0
  if [[ -n "$fm" ]] && ((secs >= 20)); then fmnist=(--fmnist-dir "$fm" --max-seconds "$secs") fm_secs=$secs; fi
  step "benchmark (${budget}s): resnet50 b256 channels-last training; Fashion-MNIST ResNet-20 to 95% (${fmnist[*]:-not run})"
  : > "$OUT/bench.jsonl"
  within $((fm_secs + 90)) "$tail_need" "gpu_bench f32" "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 "${fmnist[@]}" \
    >> "$OUT/bench.jsonl" || echo "gpu_bench failed or timed out"
  RESIN_CUDA_TF32=1 within 45 "$tail_need" "gpu_bench tf32" "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 \
    >> "$OUT/bench.jsonl" || echo "gpu_bench (TF32) failed or timed out"
  within 45 "$tail_need" "gpu_bench bf16" "$BUILD/tests/gpu/gpu_bench" --batch 256 --steps 10 --dtype bf16 \
    >> "$OUT/bench.jsonl" || echo "gpu_bench (bf16) failed or timed out"
  PYTHONUNBUFFERED=1 within $((fm_secs + 120)) "$tail_need" "bench_torch.py" python3 tests/gpu/bench_torch.py --batch 256 --steps 10 \
    "${fmnist[@]}" >> "$OUT/bench.jsonl" || echo "bench_torch.py failed or timed out"
  python3 tests/gpu/bench_table.py "$OUT/bench.jsonl" "$OUT/nvidia-smi.txt" > "$OUT/bench.md"
  cat "$OUT/bench.md"
fi

if [[ $mode == all || $mode == test ]]; then
  test_group nccl 60 30 'CudaNccl.*'

  # The command-line tools, unchanged, with --device cuda (each must print its result line).
  step "resin train / lab / bench --device cuda"
  cli_tmp=$(mktemp -d)
  {
    if [[ -z "$fm" ]]; then
      echo "FAILED: no Fashion-MNIST (run tests/gpu/fetch-deps.sh first): resin train and resin lab not run"
    else
      within 120 0 "resin train" "$BUILD/resin" train --device cuda --data-dir "$fm" --epochs 1 --train-subset 4096 \
        --test-subset 1000 --progress lines --out "$cli_tmp/train" || echo "FAILED: resin train --device cuda"
      within 120 0 "resin lab" "$BUILD/resin" lab e3-ensemble --quick --device cuda --data-dir "$fm" \
        --out "$cli_tmp/lab" || echo "FAILED: resin lab --device cuda"
    fi
    within 60 0 "resin bench train" "$BUILD/resin" bench --device cuda --model resnet20 --batch-size 128 --reps 5 ||
      echo "FAILED: resin bench --device cuda"
    within 60 0 "resin bench infer" "$BUILD/resin" bench --device cuda --model resnet50 --image-size 224 \
      --batch-size 32 --mode infer --reps 5 || echo "FAILED: resin bench --device cuda --mode infer"
  } > "$OUT/cli.log" 2>&1
  grep -E "^result|^e3-ensemble|median|FAILED|SKIPPED|TIMED OUT|error" "$OUT/cli.log" | head -20
  for want in "^result: resnet20" "^e3-ensemble: P1" "resnet20 train f32 on cuda" "resnet50 infer f32 on cuda"; do
    grep -q "$want" "$OUT/cli.log" || { echo "FAILED: no line matching '$want' in cli.log"; rc=1; }
  done
  grep -q FAILED "$OUT/cli.log" && rc=1
  rm -rf "$cli_tmp"
fi

if [[ $mode == memcheck ]]; then  # for debugging a failure: the kernels under compute-sanitizer
  : > "$OUT/test_gpu.log"
  step "kernel parity under compute-sanitizer memcheck"
  within 300 120 "memcheck" compute-sanitizer --tool memcheck --error-exitcode 3 "$BUILD/tests/gpu/test_gpu" \
    --gtest_brief=1 --gtest_filter='CudaKernelParity*' >> "$OUT/test_gpu.log" 2>&1
  rc=$?
  # The kernels with shared memory, barriers and warp shuffles (reductions, softmax, norms).
  for tool in racecheck synccheck; do
    step "reductions, softmax and norms under compute-sanitizer $tool"
    within 120 0 "$tool" compute-sanitizer --tool "$tool" --error-exitcode 3 "$BUILD/tests/gpu/test_gpu" \
      --gtest_brief=1 --gtest_filter='CudaKernelParityElementwise.*:CudaKernelParity.LayerNorm*' \
      >> "$OUT/test_gpu.log" 2>&1 || rc=$?
  done
  tail -60 "$OUT/test_gpu.log"
fi
step "done (test rc $rc)"
exit $rc
