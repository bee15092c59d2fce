#!/usr/bin/env bash
# libFuzzer runs of every reader (fuzz/targets.h), built with clang + ASan + UBSan in build-fuzz/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   build, then fuzz each target for SECONDS (default 30;
#                                           targets: safetensors json idx cifar checkpoint cli)
#   scripts/fuzz.sh --seeds                 rewrite the seed corpora in fuzz/corpus/
#
# The checked-in seeds (fuzz/corpus/<target>/) are read-only inputs; the working corpus grows in
# build-fuzz/corpus/<target>/ and is kept between runs. A crash, leak, timeout or sanitizer report
# stops that target, leaves the input as build-fuzz/artifacts/<target>-crash-<sha1> and makes the
# script exit 1: copy the input to fuzz/regressions/<target>/ (tests/fuzz replays it) and fix the bug.
# Prints one line per target: executions, executions/s, corpus size, result.
# Environment: FUZZ_DIR (default build-fuzz), JOBS (build jobs; default: number of cores),
# PARALLEL (targets fuzzed at once; default: number of cores), FUZZ_FLAGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
all_targets=(safetensors json idx cifar checkpoint cli)

configure() {
  cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DRESIN_FUZZ=ON -DRESIN_BUILD_TESTS=OFF -DRESIN_BUILD_BENCH=OFF \
    >/dev/null
}

if [[ "${1:-}" == "--seeds" ]]; then
  configure
  cmake --build "$FUZZ_DIR" -j "$JOBS" --target fuzz_make_corpus
  rm -rf fuzz/corpus
  "$FUZZ_DIR/fuzz/fuzz_make_corpus" fuzz/corpus
  echo "fuzz/corpus rewritten:"; du -sh fuzz/corpus/*
  exit 0
fi

seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

configure
t0=$SECONDS
cmake --build "$FUZZ_DIR" -j "$JOBS" --target "${targets[@]/#/fuzz_}"
echo "fuzz: build took $((SECONDS - t0)) s"

mkdir -p "$FUZZ_DIR/artifacts"
# Runs one target; its summary line goes to $FUZZ_DIR/artifacts/<target>.result.
fuzz_one() {
  local t=$1 log="$FUZZ_DIR/artifacts/$1.log" rc=0
  mkdir -p "$FUZZ_DIR/corpus/$t"
  # One compute thread: the targets are single inputs, and OpenMP threads would only add noise.
  # -close_fd_mask=1 silences the CLI target's --help text.
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$FUZZ_DIR/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -close_fd_mask=1 -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/artifacts/$t-" ${FUZZ_FLAGS:-} \
    "$FUZZ_DIR/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  local execs rate corpus result=ok
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$FUZZ_DIR/corpus/$t" -type f | wc -l)
  if ((rc != 0)); then
    result="FAILED (rc $rc): $(grep -m1 -E 'ERROR|SUMMARY|invariant|deadly|timeout' "$log" || echo "see $log")"
  fi
  printf '%-12s %8s %12s %10s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$corpus" "$result" \
    >"$FUZZ_DIR/artifacts/$t.result"
}

# PARALLEL targets at a time (default: one per core).
parallel=${PARALLEL:-$(nproc)}
t0=$SECONDS
running=0
for t in "${targets[@]}"; do
  rm -f "$FUZZ_DIR/artifacts/$t.result"
  fuzz_one "$t" &
  if ((++running >= parallel)); then wait -n || true; ((running--)); fi
done
wait
printf '%-12s %8s %12s %10s %8s  %s\n' target seconds executions exec/s corpus result
failed=0
for t in "${targets[@]}"; do
  cat "$FUZZ_DIR/artifacts/$t.result" 2>/dev/null || { echo "$t: no result"; failed=1; }
  grep -q ' ok$' "$FUZZ_DIR/artifacts/$t.result" 2>/dev/null || failed=1
done
echo "fuzz: ${#targets[@]} targets x ${seconds} s, ${parallel} at a time, $((SECONDS - t0)) s"
exit $failed
