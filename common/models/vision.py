"""Classifiers: MLP, a small CNN for 8x8 images or 1-D signals, ResNet-20 and a CIFAR ResNet-34."""
from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, width: int = 128, depth: int = 2):
        super().__init__()
        layers, d = [nn.Flatten()], in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head; 2-D convs for (C,H,W) inputs, 1-D for (C,L)."""

    def __init__(self, in_shape: tuple, num_classes: int, width: int = 32):
        super().__init__()
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if len(in_shape) == 3 else (nn.Conv1d, nn.MaxPool1d)
        c = in_shape[0]
        self.features = nn.Sequential(
            conv(c, width, 3, padding=1), nn.ReLU(), pool(2),
            conv(width, 2 * width, 3, padding=1), nn.ReLU(), pool(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.features(torch.zeros(1, *in_shape)).shape[1]
        self.head = nn.Linear(n, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (nn.Sequential() if stride == 1 and cin == cout else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        out = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(out)) + self.short(x))


class ResNet20(nn.Module):
    """He et al. (2016) CIFAR ResNet-20: 3 stages x 3 basic blocks, widths 16/32/64."""

    def __init__(self, in_ch: int = 3, num_classes: int = 10, n: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, cin = [], 16
        for i, w in enumerate((16, 32, 64)):
            for j in range(n):
                blocks.append(_Block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def resnet20(in_shape=(3, 32, 32), num_classes=10) -> nn.Module:
    return ResNet20(in_shape[0], num_classes)


def resnet34_cifar(in_shape=(3, 32, 32), num_classes=10) -> nn.Module:
    """torchvision's ResNet-34 with the CIFAR stem (3x3 conv, no max-pool), as in AdaBelief's code."""
    import torchvision
    m = torchvision.models.resnet34(num_classes=num_classes)
    m.conv1 = nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def resnet50(in_shape=(3, 224, 224), num_classes=1000) -> nn.Module:
    """torchvision's ImageNet ResNet-50, random init (full scale only)."""
    import torchvision
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


def vit_b16(in_shape=(3, 224, 224), num_classes=1000) -> nn.Module:
    """torchvision's ViT-B/16, randomly initialized (no weights are downloaded)."""
    import torchvision
    return torchvision.models.vit_b_16(weights=None, num_classes=num_classes, image_size=in_shape[-1])


MODELS = {
    "mlp": lambda in_shape, num_classes: MLP(math.prod(in_shape), num_classes),
    "cnn": SmallCNN,
    "resnet20": resnet20,
    "resnet34": resnet34_cifar,
    "resnet50": resnet50,
    "vit_b16": vit_b16,
}


def build(name: str, in_shape: tuple, num_classes: int) -> nn.Module:
    if name not in MODELS:
        from optrepro.config import closest
        from optrepro.errors import UsageError
        raise UsageError(f"unknown model '{name}'{closest(name, MODELS)}; valid: {', '.join(MODELS)}")
    return MODELS[name](in_shape, num_classes)
