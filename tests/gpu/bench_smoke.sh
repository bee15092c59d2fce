#!/usr/bin/env bash
# The GPU benchmark's programs, run where there is no GPU (ctest gpu_bench_smoke in the CUDA build):
# gpu_bench on the emulated GPU and bench_torch.py on the CPU, both at toy sizes, then
# bench_table.py on what they print. The numbers mean nothing; what this proves is that the
# benchmark stage of tests/gpu/run.sh runs through, so a GPU machine's scarce minutes are not spent
# on a crash in a script.
#   bench_smoke.sh GPU_BENCH_EMULATED [FASHION_MNIST_DIR]
set -euo pipefail
bench=$1
fm=${2:-/usr/share/datasets/fashion-mnist}
here=$(cd "$(dirname "$0")" && pwd)
py=python3  # Debian's (python3-torch, as the parity tests use) before whatever PATH finds first
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fm_args=()
if [[ -e $fm/train-images-idx3-ubyte.gz ]]; then
  # 10 steps of 8 images: enough for the warm-up + cosine schedule to have both parts.
  fm_args=(--fmnist-dir "$fm" --subset 80 --fmnist-batch 8 --epochs 1 --target 99)
fi
# ${a[@]+"${a[@]}"}: an empty array under set -u on any bash.
"$bench" --batch 2 --steps 1 --image-size 32 ${fm_args[@]+"${fm_args[@]}"} >> "$out/bench.jsonl"
RESIN_CUDA_TF32=1 "$bench" --batch 2 --steps 1 --image-size 32 >> "$out/bench.jsonl"
"$bench" --batch 2 --steps 1 --image-size 32 --dtype bf16 >> "$out/bench.jsonl"
"$py" "$here/bench_torch.py" --device cpu --batch 2 --steps 1 --image-size 32 ${fm_args[@]+"${fm_args[@]}"} \
  >> "$out/bench.jsonl"
cat > "$out/nvidia-smi.txt" <<'SMI'
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
|   0  NVIDIA H200                    On  |   00000000:19:00.0 Off |                    0 |
SMI
"$py" "$here/bench_table.py" "$out/bench.jsonl" "$out/nvidia-smi.txt" > "$out/bench.md"
cat "$out/bench.md"

expect() {
  grep -qE "$1" "$out/bench.md" || { echo "bench_smoke: no line matching '$1' in the table" >&2; exit 1; }
}
expect '^Measured .* on NVIDIA H200\.$'
# Every ResNet-50 row, whole (resin's with its ratio to torch's row of the same numerics).
for dtype in 'f32' 'f32 \(TF32 convs\)' 'bf16 autocast'; do
  expect "^\\| resin \\| $dtype \\| 2 \\| 32x32 \\| [0-9.]+ \\| [0-9.]+x \\| [0-9.]+ \\|\$"
done
for dtype in 'f32' 'f32 \(TF32\)' 'bf16 autocast'; do
  expect "^\\| torch [^|]+ \\| $dtype \\| 2 \\| 32x32 \\| [0-9.]+ \\|  \\| [0-9.]+ \\|\$"
done
# The f32 ratio is resin's images/s over torch's f32 row's.
ratio=$("$py" - "$out/bench.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{") and "resnet50" in l]
speed = lambda fw: next(r["images_per_s"] for r in rows if r["framework"].startswith(fw) and r["dtype"] == "f32")
print(f"{speed('resin') / speed('torch'):.2f}x")
PY
)
expect "^\\| resin \\| f32 \\| 2 \\| 32x32 \\| [0-9.]+ \\| $ratio \\|"
if [[ ${#fm_args[@]} != 0 ]]; then
  expect '^\| resin \| 99(\.0+)?% \| no \| [0-9.]+ \| 1 \| [0-9.]+% \|$'
  expect '^\| torch [^|]+ \| 99(\.0+)?% \| no \| [0-9.]+ \| 1 \| [0-9.]+% \|$'
fi
echo "bench_smoke: ok"
