"""The robustness suite, in the manner of ImageNet-C: a split scored again under each thing real
footage does to faces (a head turn, dim uneven light, blur, a small face, sensor noise, JPEG,
an occluder) at three strengths, with the same fixed seed for every model so that scores compare.
The degradations are the training augmentations' own functions (`emoscope.train.augment`) at a
fixed strength, plus JPEG through OpenCV's encoder. Beside the suite (not in its mean, which stays
comparable with earlier scores), where a face landmarker is at hand: the head turn made from each
face's mesh (`emoscope.data.turn`), which turns the face as the landmarker sees it where the
cylinder mostly slides it sideways."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..metrics import softmax
from ..train.augment import gaussian_blur, head_turn, low_resolution, sensor_noise, uneven_light
from .metrics_report import score

DEGRADATIONS = ("turn", "light", "blur", "small", "noise", "jpeg", "occlusion")
STRENGTHS = (1 / 3, 2 / 3, 1.0)
JPEG_QUALITY = {1 / 3: 40, 2 / 3: 20, 1.0: 8}
SEED = 0


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images.astype(np.float32) / 255)
    return x.unsqueeze(1) if images.ndim == 3 else x.permute(0, 3, 1, 2)


def _to_uint8(x: torch.Tensor, like: np.ndarray) -> np.ndarray:
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr[:, 0] if like.ndim == 3 else arr.permute(0, 2, 3, 1)
    return arr.contiguous().numpy()


def degraded(images: np.ndarray, kind: str, strength: float) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, 3) under one degradation at one strength (seeded)."""
    if kind == "jpeg":
        quality = JPEG_QUALITY[min(JPEG_QUALITY, key=lambda s: abs(s - strength))]
        flag = cv2.IMREAD_GRAYSCALE if images.ndim == 3 else cv2.IMREAD_COLOR
        return np.stack([cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], flag)
                         for im in images])
    g = torch.Generator().manual_seed(SEED)
    n = len(images)
    x = _to_tensor(images)
    s = torch.full((n,), float(strength))
    if kind == "turn":  # alternate sides, as many faces turned left as right
        sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
        x = head_turn(x, sign * 60 * strength, torch.zeros(n))
    elif kind == "light":
        x = uneven_light(x, s, torch.rand(n, generator=g) * 2 * np.pi - np.pi)
    elif kind == "blur":
        x = gaussian_blur(x, s)
    elif kind == "small":
        x = low_resolution(x, strength)
    elif kind == "noise":
        x = sensor_noise(x, s, g)
    elif kind == "occlusion":  # a grey block over a random part of the face, up to a third of its area
        h, w = x.shape[2:]
        side_h, side_w = int(round(h * np.sqrt(strength / 3))), int(round(w * np.sqrt(strength / 3)))
        y0 = torch.randint(0, h - side_h + 1, (n,), generator=g)
        x0 = torch.randint(0, w - side_w + 1, (n,), generator=g)
        rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        mask = ((rows >= y0.view(n, 1, 1)) & (rows < (y0 + side_h).view(n, 1, 1))
                & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + side_w).view(n, 1, 1)))
        x = torch.where(mask.unsqueeze(1), torch.full_like(x, 0.5), x)
    else:
        raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(DEGRADATIONS)}")
    return _to_uint8(x, images)


def mesh_turned(images: np.ndarray, meshes: np.ndarray, presence: np.ndarray, strength: float) -> np.ndarray:
    """The faces turned from their meshes by 60 degrees times `strength`, alternate sides as the
    cylinder turn; a face whose mesh the landmarker did not find (presence < 0.5) stays as it is."""
    from ..data.turn import turn_face
    out = images.copy()
    for i in np.flatnonzero(presence >= 0.5):
        out[i] = turn_face(images[i], meshes[i], (60 if i % 2 == 0 else -60) * strength)
    return out


def robustness(logits_of, images: np.ndarray, labels: np.ndarray, classes: list[str], temperature: float,
               class_bias=None, meshes: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Scores under every degradation and strength: rows of (degradation, strength, accuracy,
    balanced accuracy, macro-F1), and the mean of each over the whole suite. With `meshes` (each
    face's mesh and presence, `emoscope.data.turn.face_meshes`), the mesh head turn beside it."""
    def row(kind: str, strength: float, degraded_images: np.ndarray) -> dict:
        r = score(softmax(logits_of(degraded_images), temperature, class_bias), labels, classes)
        return {"degradation": kind, "strength": round(strength, 3), "accuracy": round(r["accuracy"], 4),
                "balanced_accuracy": round(r["balanced_accuracy"], 4), "macro_f1": round(r["macro_f1"], 4)}
    rows = [row(kind, strength, degraded(images, kind, strength)) for kind in DEGRADATIONS for strength in STRENGTHS]
    mean = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("accuracy", "balanced_accuracy", "macro_f1")}
    result = {"rows": rows, "mean": mean}
    if meshes is not None:
        turned = [row("mesh turn", strength, mesh_turned(images, *meshes, strength)) for strength in STRENGTHS]
        result["mesh_turn"] = {"rows": turned, "faces_turned": round(float((meshes[1] >= 0.5).mean()), 4),
                               "mean_macro_f1": round(float(np.mean([r["macro_f1"] for r in turned])), 4)}
    return result
