"""Residual networks designed for 48x48 faces: a full-resolution stem, four stages that halve
the resolution (48 -> 24 -> 12 -> 6), basic blocks, global average pooling. Narrow early stages
keep CPU training fast; width goes where the resolution is small."""

from __future__ import annotations

from torch import nn

from .registry import register


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, stride)
        self.conv2 = conv_bn(cout, cout)
        self.short = conv_bn(cin, cout, stride, k=1) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))) + self.short(x))


class ResNetFER(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths=(32, 64, 128, 256),
                 depths=(1, 1, 1, 1), drop: float = 0.2):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chans, widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop),
                                  nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


@register
def resnet_fer(num_classes=7, in_chans=1, width: int = 32, depth: int = 1, **kw):
    """The family with free base `width` (stages width-2w-4w-8w) and `depth` blocks per stage."""
    return ResNetFER(num_classes, in_chans, (width, 2 * width, 4 * width, 8 * width), (depth,) * 4, **kw)


@register
def resnet_fer_s(num_classes=7, in_chans=1, **kw):
    """1.2M parameters: stages 32-64-128-256, one block each (the measured starting point)."""
    return ResNetFER(num_classes, in_chans, (32, 64, 128, 256), (1, 1, 1, 1), **kw)


@register
def resnet_fer_ms(num_classes=7, in_chans=1, **kw):
    """Between s and m in cost: m's wide late stages at one block each and a 24-channel first stage
    (the 48x48 maps are the costliest to keep wide): 1.8M parameters, 154M MACs, about 1.4x the int8
    faces/s of m. Taught online by m it comes within 0.2-0.5 points of m (model card): the default model."""
    return ResNetFER(num_classes, in_chans, (24, 64, 160, 320), (1, 1, 1, 1), **kw)


@register
def resnet_fer_m(num_classes=7, in_chans=1, **kw):
    """Wider late stages and a second block at 12x12: 2.3M parameters, 242M MACs (the default model's teacher)."""
    return ResNetFER(num_classes, in_chans, (32, 64, 160, 320), (1, 1, 2, 1), **kw)


@register
def resnet_fer_l(num_classes=7, in_chans=1, **kw):
    """Two blocks per stage, 48-96-192-384: 6.3M parameters."""
    return ResNetFER(num_classes, in_chans, (48, 96, 192, 384), (2, 2, 2, 2), **kw)
