#!/usr/bin/env bash
# Data-parallel scaling on this machine (docs/distributed.md): training throughput of one process
# against two (`resin launch -n 2`), each at one compute thread, and the share of the gradient
# all-reduce hidden behind backward. Usage:
#   scripts/ddp-scaling.sh [BUILD_DIR] [extra resin train options...]
# Environment: MODEL (default resnet20), BATCH (per process, default 128), STEPS (default 60).
# Prints one line per configuration: images/s is wall-clock throughput (the mean over the metrics
# windows after the first, warm-up one, counted over all processes); images/cpu-s divides the
# training images by the CPU time of all processes together (start-up and evaluation included),
# which stays meaningful when other jobs share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
model=${MODEL:-resnet20}
batch=${BATCH:-128}
steps=${STEPS:-60}
out=$(mktemp -d /tmp/resin-ddp-scaling.XXXXXX)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

# run NAME PROCESSES GLOBAL_BATCH [options]
run() {
  local name=$1 procs=$2 global=$3
  shift 3
  local args=(train --model "$model" --batch-size "$global" --train-subset $((global * steps)) --test-subset 500
              --epochs 1 --threads 1 --workers 1 --log-every 10 --progress lines --out "$out/$name" "$@")
  local log="$out/$name.log" cpu
  local TIMEFORMAT='%U %S'
  if ((procs == 1)); then
    cpu=$( { time "$build/resin" "${args[@]}" >"$log" 2>&1; } 2>&1 )
  else
    cpu=$( { time "$build/resin" launch -n "$procs" -- resin "${args[@]}" >"$log" 2>&1; } 2>&1 )
  fi
  local per_cpu
  per_cpu=$(echo "$cpu" | awk -v n=$((global * steps)) '{printf "%.1f", n / ($1 + $2)}')
  local ips
  ips=$( (grep '"kind": "train"' "$out/$name/metrics.jsonl" || true) | tail -n +2 |
        sed -E 's/.*"images_per_s": ([0-9.e+-]+).*/\1/' | awk '{s += $1; n++} END {printf "%.1f", s / n}')
  local ddp
  ddp=$( (grep -o '[0-9]* gradient buckets' "$log" || true) | tr '\n' ' ')
  ddp+=$(grep -o 'ran [0-9.]* s, training waited [0-9.]* s ([0-9]*% hidden behind backward)' "$log" || echo "-")
  printf '%-34s %d proc  batch %4d  %7s images/s  %7s images/cpu-s  %s\n' "$name" "$procs" "$global" "$ips" \
    "$per_cpu" "$ddp"
}

echo "model $model, $steps steps, 1 thread per process, $(getconf _NPROCESSORS_ONLN) cores, $(date -u +%Y-%m-%dT%H:%MZ)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
run one-process 1 "$batch" "$@"
run two-processes-weak 2 $((2 * batch)) "$@"
run two-processes-strong 2 "$batch" "$@"
run two-processes-weak-small-buckets 2 $((2 * batch)) --bucket-mb 0.1 "$@"
