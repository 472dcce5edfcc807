"""Transfer backbones: VGG16, VGG19, ResNet50 and MobileNetV2 with torchvision-compatible
parameter names, so torchvision's ImageNet checkpoints load through torch.hub's normal loader
(`pretrained=True`, needs internet) without importing torchvision (whose PyPI build does not load
beside our pinned torch). Grayscale input is repeated to three channels so the pretrained first
convolution stays intact; the ImageNet classifier is replaced by pooling and a linear head.
Trainer option `freeze_epochs` gives frozen feature extraction and staged fine-tuning."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register

WEIGHTS = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
}


class TransferNet(nn.Module):
    """backbone (ImageNet names) -> global average pool -> dropout -> linear `head`."""

    def __init__(self, backbone: nn.Module, features: int, num_classes: int, in_chans: int, drop: float = 0.2):
        super().__init__()
        self.in_chans = in_chans
        self.backbone = backbone
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop), nn.Linear(features, num_classes))

    def forward(self, x):
        if self.in_chans == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.head(self.backbone(x))


def load_pretrained(backbone: nn.Module, name: str) -> None:
    """ImageNet weights via torch.hub (cached in ~/.cache/torch); a clear error when offline."""
    try:
        state = torch.hub.load_state_dict_from_url(WEIGHTS[name], progress=True, check_hash=True)
    except OSError as exc:
        raise RuntimeError(f"could not download ImageNet weights for {name} from {WEIGHTS[name]} ({exc}); "
                           f"pretrained=True needs internet once, or train with random init") from exc
    own = backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matched) < len(own) * 0.9:
        raise RuntimeError(f"{name}: only {len(matched)} of {len(own)} tensors matched the ImageNet checkpoint")
    backbone.load_state_dict(matched, strict=False)


# -- VGG ---------------------------------------------------------------------------------------
def vgg_features(cfg: list) -> nn.Module:
    class Features(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [], 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                    cin = v
            self.features = nn.Sequential(*layers)

        def forward(self, x):
            return self.features(x)
    return Features()


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


# -- ResNet50 ----------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet50Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            layer = []
            for j in range(blocks):
                layer.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# -- MobileNetV2 -------------------------------------------------------------------------------
def conv_bn_relu6(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn_relu6(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, hidden), nn.Conv2d(hidden, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self):
        super().__init__()
        layers, cin = [conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn_relu6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


def _transfer(backbone: nn.Module, name: str, features: int, num_classes: int, in_chans: int,
              pretrained: bool, **kw) -> TransferNet:
    if pretrained:
        load_pretrained(backbone, name)
    return TransferNet(backbone, features, num_classes, in_chans, **kw)


@register
def vgg16(num_classes=7, in_chans=1, pretrained: bool = False, **kw):
    """VGG16 features (ImageNet names) + linear head."""
    return _transfer(vgg_features(VGG16), "vgg16", 512, num_classes, in_chans, pretrained, **kw)


@register
def vgg19(num_classes=7, in_chans=1, pretrained: bool = False, **kw):
    """VGG19 features (ImageNet names) + linear head."""
    return _transfer(vgg_features(VGG19), "vgg19", 512, num_classes, in_chans, pretrained, **kw)


@register
def resnet50(num_classes=7, in_chans=1, pretrained: bool = False, **kw):
    """ResNet50 (v1.5, ImageNet names) + linear head."""
    return _transfer(ResNet50Features(), "resnet50", 2048, num_classes, in_chans, pretrained, **kw)


@register
def mobilenet_v2(num_classes=7, in_chans=1, pretrained: bool = False, **kw):
    """MobileNetV2 (ImageNet names) + linear head."""
    return _transfer(MobileNetV2Features(), "mobilenet_v2", 1280, num_classes, in_chans, pretrained, **kw)
