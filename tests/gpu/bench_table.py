#!/usr/bin/env python3
"""Tabulates the GPU benchmark (tests/gpu/run.sh): bench.jsonl lines from gpu_bench (resin) and
bench_torch.py (PyTorch) as Markdown for docs/performance.md, with resin's throughput relative to
PyTorch's at the same settings, and the GPU named from nvidia-smi's output.

  bench_table.py bench.jsonl nvidia-smi.txt > bench.md
"""
import datetime
import json
import re
import sys


def main(jsonl, smi_path):
    rows = []
    for line in open(jsonl):
        if line.startswith("{"):
            rows.append(json.loads(line))
    try:
        smi = open(smi_path).read()
    except OSError:
        smi = ""
    # The first GPU row of nvidia-smi's table: "|   0  NVIDIA H100 80GB HBM3          On  | ...".
    gpu = re.search(r"^\|\s+\d+\s+(NVIDIA(?: [^\s|]+)+)", smi, re.MULTILINE)
    print(f"Measured {datetime.date.today()} on {gpu.group(1) if gpu else 'an unknown GPU'}.\n")

    train = [r for r in rows if r["bench"] == "resnet50_train"]
    torch_speed = {(r["dtype"], r["batch"], r.get("image_size", 224)): r["images_per_s"]
                   for r in train if r["framework"].startswith("torch")}
    print("| framework | ResNet-50 training, channels-last | batch | input | images/s | resin / torch | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    for r in train:
        size = r.get("image_size", 224)
        ratio = ""
        if r["framework"] == "resin":
            # resin's "f32 (TF32 convs)" compares with torch's "f32 (TF32)"
            key = ("f32 (TF32)" if "TF32" in r["dtype"] else r["dtype"], r["batch"], size)
            if torch_speed.get(key):
                ratio = f"{r['images_per_s'] / torch_speed[key]:.2f}x"
        print(f"| {r['framework']} | {r['dtype']} | {r['batch']} | {size}x{size} | {r['images_per_s']} | {ratio} "
              f"| {r['peak_gib']} |")

    print("\n| framework | Fashion-MNIST, ResNet-20, target top-1 | reached | seconds | epochs | best top-1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["bench"] == "fmnist_time_to_target":
            print(f"| {r['framework']} | {r['target']}% | {'yes' if r['reached'] else 'no'} | {r['seconds']} "
                  f"| {r['epochs']} | {r['best_top1']}% |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: bench_table.py bench.jsonl nvidia-smi.txt")
    main(sys.argv[1], sys.argv[2])
