"""Distillation teachers: a training run's model, or an exported ONNX file run by onnxruntime."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..contract import NORM_MEAN, NORM_STD, is_onnx_path
from ..models.checkpoint import load_run_model


class OnnxTeacher(nn.Module):
    """A distillation teacher exported to ONNX (`emoscope export`), run by onnxruntime. Its int8
    copy predicts ~3x faster than the torch model in bf16 here, which is what makes online
    distillation from a large teacher affordable on a CPU."""

    def __init__(self, path: str, threads: int = 0):
        super().__init__()
        from ..runtime import ExpressionClassifier
        self.clf = ExpressionClassifier(path, threads)
        meta = self.clf.meta
        if meta.output != "logits" or not (np.allclose(meta.mean, NORM_MEAN) and np.allclose(meta.std, NORM_STD)):
            raise ValueError(f"teacher {path}: needs logits over inputs normalised by mean {NORM_MEAN}, "
                             f"std {NORM_STD} (an `emoscope export` file)")
        h, w = meta.input_size
        self.config = {"color": meta.color, "img_size": h if h == w else (h, w)}
        self.classes = meta.classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.clf.session.run(None, {self.clf.input_name: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(y).to(x.device)


class ResizedInput(nn.Module):
    """A teacher that reads another input size than the student: each batch resized to its own
    (bilinear; antialiased when shrinking), so a 48 px ensemble can teach a 64 px network."""

    def __init__(self, teacher: nn.Module, size: int):
        super().__init__()
        self.teacher, self.size = teacher, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                      antialias=x.shape[-1] > self.size)
        return self.teacher(x)


def load_teacher(source: str, threads: int = 0) -> tuple[nn.Module, dict, list[str]]:
    """A teacher from a run folder / checkpoint (torch) or an exported .onnx file."""
    if is_onnx_path(source):
        teacher = OnnxTeacher(source, threads)
        return teacher, teacher.config, teacher.classes
    return load_run_model(source)
