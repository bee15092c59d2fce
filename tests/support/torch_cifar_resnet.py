"""The CIFAR ResNet of He et al. 2015 (section 4.2: depth 6n + 2, option A shortcuts) in PyTorch, as
resin's zoo builds it (resnet20 = n 3, resnet56 = n 9). Shared by bench/compare_pytorch and
tests/gpu/bench_torch.py, which import it by path; the zoo's weight-level oracle is
tests/models/zoo_oracle.py."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class OptionA(nn.Module):
    """x[:, :, ::s, ::s] padded with zero channels, split evenly before and after."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.s, self.lo, self.hi = stride, (cout - cin) // 2, cout - cin - (cout - cin) // 2

    def forward(self, x):
        return F.pad(x[:, :, ::self.s, ::self.s], (0, 0, 0, 0, self.lo, self.hi))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = OptionA(cin, cout, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class CifarResNet(nn.Module):
    def __init__(self, n, in_ch, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, w in enumerate([16, 32, 64]):
            for b in range(n):
                layers.append(Basic(cin, w, 2 if i > 0 and b == 0 else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
