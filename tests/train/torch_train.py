"""Trains the small ResNet of train_parity_test.cpp in PyTorch: same initial weights, same batches,
same SGD settings; writes the final state_dict. Usage: torch_train.py IN.safetensors OUT.safetensors"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# The safetensors reader/writer shared with the op-parity oracle (no second copy).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from safetensors_py import read_safetensors, write_safetensors  # noqa: E402


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    t = read_safetensors(sys.argv[1])
    net = Net().double()
    state = {k[len("init."):]: v for k, v in t.items() if k.startswith("init.")}
    net.load_state_dict(state, strict=True)
    decay = [p for p in net.parameters() if p.dim() > 1]
    no_decay = [p for p in net.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.05, momentum=0.9, nesterov=True)
    net.train()
    steps = int(t["steps"].item())
    for i in range(steps):
        x, y = t[f"x.{i}"], t[f"y.{i}"]
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    write_safetensors(sys.argv[2], dict(net.state_dict()), None)


if __name__ == "__main__":
    main()
