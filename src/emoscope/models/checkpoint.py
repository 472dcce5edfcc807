"""Trained models as the rest of the torch side uses them: uint8 images to normalised tensors,
batch inference with optional flip averaging, and loading a run's checkpoint. Evaluation, export
and the trainer all come here, so none of them needs the trainer to read a model."""

from __future__ import annotations

import os
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from ..contract import NORM_MEAN, NORM_STD
from .registry import create_model


def to_input(images_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, 3) -> float (N, C, H, W) in [0, 1]."""
    t = torch.as_tensor(images_u8)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> the model input (`emoscope.contract` normalisation)."""
    return (x - NORM_MEAN) / NORM_STD


def flip_averaged_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits averaged with those of the horizontally mirrored batch, in one forward pass over both."""
    both = model(torch.cat([x, torch.flip(x, dims=[3])])).float()
    return (both[:len(x)] + both[len(x):]) / 2


@torch.no_grad()
def predict_logits(model: nn.Module, images_u8: np.ndarray, batch: int = 512, channels_last: bool = True,
                   bf16: bool = True, device: str = "cpu", flip: bool = False) -> np.ndarray:
    """Logits for uint8 images in eval mode (optionally averaged with the horizontal flip)."""
    model.eval()
    out = []
    for i in range(0, len(images_u8), batch):
        x = normalize(to_input(images_u8[i:i + batch])).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else nullcontext()
        with ctx:
            logits = flip_averaged_logits(model, x) if flip else model(x).float()
        out.append(logits.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, OpenCV's RGB -> gray


def gray_to_rgb(state: dict, target: dict) -> dict:
    """A gray network's weights for the same network over RGB input: each weight that reads one
    input channel where the colour network reads three (the stem) is spread over R, G and B by the
    luma coefficients. Convolution is linear and the normalisation is the same for every channel,
    so the colour network gives on an RGB image what the gray one gives on its luma."""
    luma = torch.tensor(LUMA)
    out = dict(state)
    for key, w in state.items():
        t = target.get(key)
        if t is not None and w.ndim == 4 and w.shape[1] == 1 and t.shape[1] == 3 and w.shape[0] == t.shape[0]:
            out[key] = w * luma.to(w.dtype).view(1, 3, 1, 1)
    return out


def run_checkpoint(run: str) -> str:
    """A run folder's best.pt, or the checkpoint file given; refused in plain words when neither
    exists."""
    from ..runtime.assets import ModelNotFoundError
    path = os.path.join(run, "best.pt") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"{run}: not a run folder with a best.pt, nor a checkpoint file")
    return path


def checkpoint_state(ck: dict, use_ema: bool = True) -> dict:
    """A checkpoint's weights: its EMA where it has one (and `use_ema`), else the raw ones."""
    return ck["ema"] if use_ema and ck.get("ema") is not None else ck["model"]


def check_resizable(size: int, input_size: int) -> None:
    """Refuse, in plain words, a network of `size` px that cannot read an `input_size` px input the
    way `Resized` does (shrinking needs a whole factor)."""
    if input_size > size and input_size % size:
        raise ValueError(f"a network trained at {size} px cannot read a {input_size} px input: shrinking the input "
                         f"needs a whole factor ({input_size} is not a multiple of {size})")


class Resized(nn.Module):
    """A network trained at another input size than the model's: its input resized in the graph as
    the data loader and the runtime's crop resize a face (a mean over whole blocks of pixels, OpenCV's
    area rule, to shrink; bilinear, OpenCV's linear rule, to enlarge). Both commute with the input
    normalisation, so they act on the normalised input."""

    def __init__(self, net: nn.Module, size: int, input_size: int):
        super().__init__()
        check_resizable(size, input_size)
        self.net, self.size, self.input_size = net, size, input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size > self.size:
            x = nn.functional.avg_pool2d(x, self.input_size // self.size)
        else:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


class LogitMean(nn.Module):
    """Several networks over one input as one: the mean of their logits (an ensemble)."""

    def __init__(self, members: list[nn.Module], names: list[str]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.names = names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def build_model(cfg: dict, classes: list[str], state: dict, color: str | None = None) -> nn.Module:
    """A network of `cfg` with the weights `state`; a gray one asked for colour reads luma (`gray_to_rgb`)."""
    color = color or cfg["color"]
    model = create_model(cfg["model"], len(classes), 1 if color == "gray" else 3, **cfg.get("model_kwargs", {}))
    if color != cfg["color"]:
        state = gray_to_rgb(state, model.state_dict())
    model.load_state_dict(state)
    return model.eval()


def load_run_model(run: str, use_ema: bool = True) -> tuple[nn.Module, dict, list[str]]:
    """The model of a run folder (best.pt) or a checkpoint file, in eval mode on the CPU; for an
    ensemble (`emoscope ensemble`), a `LogitMean` of its members, each reading the ensemble's input
    size (`Resized` where it was trained at another)."""
    path = run_checkpoint(run)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg, classes = ck["config"], ck["classes"]
    if ck.get("ensemble"):
        members = []
        for m in ck["ensemble"]:
            net = build_model(m["config"], classes, m["state"], cfg["color"])
            size = m["config"]["img_size"]
            members.append(net if size == cfg["img_size"] else Resized(net, size, cfg["img_size"]).eval())
        return LogitMean(members, [m["config"]["model"] for m in ck["ensemble"]]).eval(), cfg, classes
    return build_model(cfg, classes, checkpoint_state(ck, use_ema)), cfg, classes
