"""A small timm-style model registry: every architecture registers a constructor by name."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..contract import IMG_SIZE

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register `fn(num_classes, in_chans, **kw)` under its function name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 7, in_chans: int = 1, **kw) -> nn.Module:
    """Build a registered model. Unknown names raise with the list of known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kw)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# oneDNN's 1x1 convolution with a stride computes its weight gradient through a workspace that it
# overruns in channels_last when a group has fewer input channels than its 16-channel block
# (oneDNN issue 6035, in PyTorch 2.13's CPU build): the heap is corrupted, the process crashes or
# the gradient is wrong. Measured here: 4, 8 and 12 channels crash in float32 and bf16; 16 and more
# (every registered model at its default size) give the gradient of the contiguous layout exactly.
STRIDED_POINTWISE_MIN_CHANNELS = 16


def channels_last_hazard(model: nn.Module) -> str | None:
    """Why training `model` in channels_last on the CPU is unsafe, or None when it is safe."""
    for name, m in model.named_modules():
        if not (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)):
            continue
        channels = m.in_channels // m.groups
        if channels < STRIDED_POINTWISE_MIN_CHANNELS:
            return (f"{name} is a 1x1 convolution with a stride over {channels} input channels (fewer than "
                    f"{STRIDED_POINTWISE_MIN_CHANNELS}), which the CPU's channels_last weight gradient gets wrong")
    return None


def count_flops(model: nn.Module, in_chans: int = 1, size: int = IMG_SIZE) -> int:
    """Multiply-accumulates of one forward pass on a (1, in_chans, size, size) input.

    Counts convolutions and linear layers, which dominate every model here.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_chans, size, size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
