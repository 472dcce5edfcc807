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


def run_checkpoint(run: str) -> str:
    """A run folder's best.pt, or the checkpoint file given."""
    return os.path.join(run, "best.pt") if os.path.isdir(run) else run


def load_run_model(run: str, use_ema: bool = True) -> tuple[nn.Module, dict, list[str]]:
    """The model of a run folder (best.pt) or a checkpoint file, in eval mode on the CPU."""
    path = run_checkpoint(run)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    in_chans = 1 if cfg["color"] == "gray" else 3
    model = create_model(cfg["model"], len(ck["classes"]), in_chans, **cfg.get("model_kwargs", {}))
    state = ck["ema"] if use_ema and ck.get("ema") is not None else ck["model"]
    model.load_state_dict(state)
    return model.eval(), cfg, ck["classes"]
