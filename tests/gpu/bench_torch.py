#!/usr/bin/env python3
"""PyTorch's side of the GPU benchmark (tests/gpu/run.sh runs it next to gpu_bench).

Prints one JSON object per line, in gpu_bench's format:
  resnet50_train: training steps (forward, backward, SGD) at the given batch on random 224x224
    (--image-size) channels-last images, in f32 with TF32 off (resin's numerics), f32 with TF32 on (torch's
    default for convolutions) and bf16 autocast.
  fmnist_time_to_target: ResNet-20 (CIFAR-style, option A shortcuts, as resin's zoo) with the
    `resin train` recipe, evaluated after every epoch; seconds to the first test top-1 >= target.
The networks are defined here and in tests/support/torch_cifar_resnet.py (no torchvision needed).
"""
import argparse
import gzip
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from torch_cifar_resnet import CifarResNet  # noqa: E402  (shared with bench/compare_pytorch)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


def resnet50(classes=1000):
    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, planes, stride if i == 0 else 1))
            cin = planes * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def resnet20(cin=1, classes=10):
    return CifarResNet(3, cin, classes)


def emit(**kw):
    print(json.dumps({"framework": "torch " + torch.__version__, **kw}), flush=True)


def on_gpu(dev):
    return torch.device(dev).type == "cuda"


def sync(dev):
    if on_gpu(dev):
        torch.cuda.synchronize()


def bench_resnet50(batch, steps, mode, dev, size):
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.manual_seed(0)
    model = resnet50().to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=dev)

    def step():
        with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    sync(dev)
    if on_gpu(dev):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(dev)
    s = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if on_gpu(dev) else 0.0
    emit(bench="resnet50_train", batch=batch, dtype={"f32": "f32", "tf32": "f32 (TF32)", "bf16": "bf16 autocast"}[mode],
         layout="channels_last", image_size=size, steps=steps, images_per_s=round(batch * steps / s, 1),
         peak_gib=round(peak, 2))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def bench_fmnist(root, target, epochs, max_seconds, dev, subset, batch):
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    n = subset if subset > 0 else None  # a smoke run: the first `subset` images of each split
    load = lambda name: read_idx(os.path.join(root, name))[:n].to(dev)
    xtr, ytr = load("train-images-idx3-ubyte.gz"), load("train-labels-idx1-ubyte.gz").long()
    xte, yte = load("t10k-images-idx3-ubyte.gz"), load("t10k-labels-idx1-ubyte.gz").long()
    norm = lambda x: ((x.float() / 255.0 - 0.2860) / 0.3530).unsqueeze(1)  # Fashion-MNIST mean/std
    xtr, xte = norm(xtr), norm(xte)
    torch.manual_seed(0)
    model = resnet20().to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0}],
                          lr=0.1, momentum=0.9, nesterov=True)
    ipe = xtr.shape[0] // batch
    warmup = ipe // 5
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, 0.1, 1.0, warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ipe - warmup)], [warmup])
    rows = torch.arange(28, device=dev)
    t0, best, reached, epoch = time.perf_counter(), 0.0, None, 0
    while epoch < epochs and reached is None and time.perf_counter() - t0 < max_seconds:
        model.train()
        perm = torch.randperm(xtr.shape[0], device=dev)
        for i in range(ipe):
            idx = perm[i * batch:(i + 1) * batch]
            x = F.pad(xtr[idx], (2, 2, 2, 2))  # random crop (padding 2) and horizontal flip, per sample
            dy, dx = torch.randint(0, 5, (2, batch), device=dev)
            x = x[torch.arange(batch, device=dev)[:, None, None], 0, (dy[:, None] + rows)[:, :, None],
                  (dx[:, None] + rows)[:, None, :]].unsqueeze(1)
            flip = torch.rand(batch, device=dev) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = sum((model(xte[j:j + 1000]).argmax(1) == yte[j:j + 1000]).sum().item()
                      for j in range(0, xte.shape[0], 1000)) * 100.0 / xte.shape[0]
        epoch += 1
        best = max(best, acc)
        print(f"torch fmnist epoch {epoch}: {acc:.2f}% at {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        if acc >= target:
            reached = time.perf_counter() - t0
    emit(bench="fmnist_time_to_target", model="resnet20", target=target, reached=reached is not None,
         seconds=round(reached if reached is not None else time.perf_counter() - t0, 1), epochs=epoch,
         best_top1=round(best, 2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--fmnist-dir", default="")
    ap.add_argument("--target", type=float, default=95.0)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--max-seconds", type=float, default=150.0)
    # Smoke runs (tests/gpu/bench_smoke.sh checks this script on a CPU): device, sizes, subsets.
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--subset", type=int, default=0)
    ap.add_argument("--fmnist-batch", type=int, default=128)
    a = ap.parse_args()
    for mode in ("f32", "tf32", "bf16"):
        bench_resnet50(a.batch, a.steps, mode, a.device, a.image_size)
    if a.fmnist_dir:
        bench_fmnist(a.fmnist_dir, a.target, a.epochs, a.max_seconds, a.device, a.subset, a.fmnist_batch)


if __name__ == "__main__":
    main()
