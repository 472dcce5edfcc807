"""Plain CNNs people compare against: the Kaggle baseline, a complexity ladder, and the VGG-style
network of Khaireddin & Chen (2021). `bn` and `drop` switch batch-norm and dropout for ablations."""

from __future__ import annotations

from torch import nn

from ..contract import IMG_SIZE
from .registry import register


def conv_block(cin: int, cout: int, k: int = 3, n: int = 1, bn: bool = True, drop: float = 0.0) -> nn.Sequential:
    """`n` convs (k x k, same padding) with optional BN, ReLU, then 2x2 max-pool and dropout."""
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, k, padding=k // 2, bias=not bn)]
        layers += [nn.BatchNorm2d(cout)] if bn else []
        layers += [nn.ReLU(inplace=True)]
    layers += [nn.MaxPool2d(2)] + ([nn.Dropout(drop)] if drop else [])
    return nn.Sequential(*layers)


def dense_block(cin: int, cout: int, bn: bool = True, drop: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(cin, cout, bias=not bn)]
    layers += [nn.BatchNorm1d(cout)] if bn else []
    layers += [nn.ReLU(inplace=True)] + ([nn.Dropout(drop)] if drop else [])
    return nn.Sequential(*layers)


class SequentialCNN(nn.Module):
    """Conv blocks, flatten, dense blocks, linear classifier (softmax lives in the loss)."""

    def __init__(self, convs: list[tuple[int, int]], denses: list[int], num_classes: int, in_chans: int,
                 size: int = IMG_SIZE, convs_per_block: int = 1, bn: bool = True, drop: float = 0.25,
                 dense_drop: float = 0.5):
        super().__init__()
        blocks, cin = [], in_chans
        for cout, k in convs:
            blocks.append(conv_block(cin, cout, k, convs_per_block, bn, drop))
            cin = cout
        self.features = nn.Sequential(*blocks)
        flat = cin * (size >> len(convs)) ** 2
        dense = []
        for d in denses:
            dense.append(dense_block(flat, d, bn, dense_drop))
            flat = d
        self.classifier = nn.Sequential(nn.Flatten(), *dense, nn.Linear(flat, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@register
def baseline_cnn(num_classes=7, in_chans=1, **kw):
    """The widely copied Kaggle baseline: 64, 128 (5x5), 512, 512 conv blocks; dense 256, 512."""
    return SequentialCNN([(64, 3), (128, 5), (512, 3), (512, 3)], [256, 512], num_classes, in_chans, **kw)


@register
def cnn_small(num_classes=7, in_chans=1, **kw):
    """2 conv + 1 dense."""
    return SequentialCNN([(32, 3), (64, 3)], [128], num_classes, in_chans, **kw)


@register
def cnn_medium(num_classes=7, in_chans=1, **kw):
    """3 conv + 1 dense."""
    return SequentialCNN([(32, 3), (64, 3), (128, 3)], [256], num_classes, in_chans, **kw)


@register
def cnn_large(num_classes=7, in_chans=1, **kw):
    """4 conv + 2 dense."""
    return SequentialCNN([(32, 3), (64, 3), (128, 3), (256, 3)], [256, 128], num_classes, in_chans, **kw)


@register
def vgg_fer(num_classes=7, in_chans=1, fc: int = 4096, **kw):
    """Khaireddin & Chen (2021): 4 stages of two 3x3 convs (64-128-256-512) with BN, two FC layers."""
    kw.setdefault("drop", 0.0)
    return SequentialCNN([(64, 3), (128, 3), (256, 3), (512, 3)], [fc, fc], num_classes, in_chans,
                         convs_per_block=2, **kw)
