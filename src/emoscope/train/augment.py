"""Whole-batch augmentation as tensor ops (no per-image Python): one affine_grid/grid_sample call
does rotation, scale, shift and flip for the batch; colour jitter and erasing are broadcast math.
The one exception, `mesh_turn` (a head turn made from each face's own mesh), warps chosen faces one
by one (about 3.4 ms a 96 px face on one core), on the uint8 faces before the rest."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import AugmentConfig


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator | None = None) -> torch.Tensor:
    """Augment a float batch (N, C, H, W) with values in [0, 1]."""
    n = x.shape[0]
    x = degrade(x, cfg, g)
    if cfg.eye_band > 0:
        x = eye_band(x, cfg.eye_band, g)
    angle = _uniform(n, -cfg.rotate, cfg.rotate, g) * math.pi / 180
    zoom = _uniform(n, 1 - cfg.scale, 1 + cfg.scale, g)
    flip = torch.where(torch.rand(n, generator=g) < cfg.flip, -1.0, 1.0)
    tx = _uniform(n, -cfg.shift, cfg.shift, g) * 2
    ty = _uniform(n, -cfg.shift, cfg.shift, g) * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness or cfg.contrast:
        c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, g).view(n, 1, 1, 1)
        b = _uniform(n, -cfg.brightness, cfg.brightness, g).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean + b).clamp_(0, 1)
    if cfg.erase > 0:
        x = random_erase(x, cfg.erase, cfg.erase_area, g)
    return x


# Where the eyes sit in the training crops (YuNet's eye points on FER2013 and web_faces crops, as
# fractions of the side): rows 0.27-0.45 (median 0.38), columns 0.26-0.73.
EYE_ROWS = (0.30, 0.46)
EYE_BAND_CENTRE = (0.45, 0.55)  # columns
EYE_BAND_HEIGHT = (0.12, 0.20)
EYE_BAND_WIDTH = (0.60, 0.85)


def eye_band(x: torch.Tensor, p: float, g: torch.Generator | None) -> torch.Tensor:
    """Cover the eyes of each chosen image with a dark, slightly noisy band, as dark sunglasses do
    (applied before the affine, so the band turns and shifts with the face)."""
    n, _, h, w = x.shape
    cy = _uniform(n, *EYE_ROWS, g).view(n, 1, 1)
    half_h = _uniform(n, *EYE_BAND_HEIGHT, g).view(n, 1, 1) / 2
    cx = _uniform(n, *EYE_BAND_CENTRE, g).view(n, 1, 1)
    half_w = _uniform(n, *EYE_BAND_WIDTH, g).view(n, 1, 1) / 2
    rows = (torch.arange(h).view(1, h, 1) + 0.5) / h
    cols = (torch.arange(w).view(1, 1, w) + 0.5) / w
    mask = ((rows - cy).abs() < half_h) & ((cols - cx).abs() < half_w)
    mask &= (torch.rand(n, generator=g) < p).view(n, 1, 1)
    shade = _uniform(n, 0.0, 0.3, g).view(n, 1, 1, 1).to(x.dtype)
    fill = (shade + 0.03 * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)
    return torch.where(mask.unsqueeze(1), fill, x)


def random_erase(x: torch.Tensor, p: float, area: tuple[float, float], g: torch.Generator | None) -> torch.Tensor:
    """Fill one random rectangle per chosen image with uniform noise."""
    n, _, h, w = x.shape
    frac = _uniform(n, *area, g)
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w)
    y0 = torch.rand(n, generator=g) * (h - eh)
    x0 = torch.rand(n, generator=g) * (w - ew)
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    mask = ((rows >= y0.view(n, 1, 1)) & (rows < (y0 + eh).view(n, 1, 1))
            & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + ew).view(n, 1, 1)))
    mask &= (torch.rand(n, generator=g) < p).view(n, 1, 1)
    noise = torch.rand(x.shape, generator=g, dtype=x.dtype)
    return torch.where(mask.unsqueeze(1), noise, x)


def mix(x: torch.Tensor, target: torch.Tensor, cfg: AugmentConfig,
        g: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix of images and their (N, classes) target distributions, one Beta-drawn
    ratio per batch."""
    use_cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or torch.rand(1, generator=g).item() < 0.5)
    alpha = cfg.cutmix if use_cutmix else cfg.mixup
    if alpha <= 0:
        return x, target
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=g)
    if use_cutmix:
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = torch.randint(h, (1,), generator=g).item(), torch.randint(w, (1,), generator=g).item()
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]


# -- what real footage does to faces ------------------------------------------------------------
# Each takes per-sample strengths in [0, 1] (0: untouched), so training draws them at random and
# the robustness suite (evaluate/robustness.py) applies one fixed strength to a whole split.
FACE_RADIUS = 0.85      # half-width of the face cylinder, in normalised crop coordinates
MAX_TURN_DEG = 60.0     # strength 1 of a head turn
MAX_BLUR_SIGMA = 0.04   # strength 1 of blur, as a fraction of the side
MIN_LOWRES = 0.12       # strength 1 of a small face: the side it is shrunk to, as a fraction
MAX_NOISE_SD = 0.06


def head_turn(x: torch.Tensor, yaw_deg: torch.Tensor, pitch_deg: torch.Tensor) -> torch.Tensor:
    """Turn each face by yaw (left/right) and pitch (up/down) degrees, modelling the head as a
    cylinder of radius FACE_RADIUS about the crop's centre: a point at angle phi on the cylinder
    is seen at R sin(phi + turn), so the near side widens and the far side is squeezed, which a
    mirror or an in-plane rotation cannot do. Outside the cylinder the background stays."""
    n, _, h, w = x.shape
    r = FACE_RADIUS

    def source(coord: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
        phi = (torch.asin(coord.clamp(-r, r) / r) - turn).clamp(-math.pi / 2, math.pi / 2)
        return torch.where(coord.abs() < r, r * torch.sin(phi), coord)

    cols = (torch.arange(w, dtype=x.dtype) + 0.5) / w * 2 - 1
    rows = (torch.arange(h, dtype=x.dtype) + 0.5) / h * 2 - 1
    sx = source(cols.view(1, 1, w), (yaw_deg * math.pi / 180).to(x.dtype).view(n, 1, 1)).expand(n, h, w)
    sy = source(rows.view(1, h, 1), (pitch_deg * math.pi / 180).to(x.dtype).view(n, 1, 1)).expand(n, h, w)
    return F.grid_sample(x, torch.stack([sx, sy], -1), mode="bilinear", padding_mode="border", align_corners=False)


def uneven_light(x: torch.Tensor, strength: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Dim, uneven light: a linear falloff across the face towards `direction` (radians) down to
    1 - 0.7 * strength, then a gamma of 1 + 1.5 * strength (darker mid-tones)."""
    n, _, h, w = x.shape
    cols = (torch.arange(w, dtype=x.dtype) + 0.5) / w - 0.5
    rows = (torch.arange(h, dtype=x.dtype) + 0.5) / h - 0.5
    along = (cols.view(1, 1, w) * torch.cos(direction).view(n, 1, 1)
             + rows.view(1, h, 1) * torch.sin(direction).view(n, 1, 1))  # -0.7..0.7
    s = strength.to(x.dtype).view(n, 1, 1)
    gain = 1 - 0.7 * s * (along + 0.71) / 1.42
    gamma = (1 + 1.5 * strength.to(x.dtype)).view(n, 1, 1, 1)
    return (x * gain.unsqueeze(1)).clamp(0, 1) ** gamma


def gaussian_blur(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur per sample, sigma = strength * MAX_BLUR_SIGMA * side."""
    n, c, h, w = x.shape
    sigma = (strength.to(x.dtype) * MAX_BLUR_SIGMA * max(h, w)).clamp(min=1e-3).view(n, 1)
    half = max(1, int(math.ceil(3 * MAX_BLUR_SIGMA * max(h, w))))
    taps = torch.arange(-half, half + 1, dtype=x.dtype).view(1, -1)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n * c, k)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (half, half, half, half), mode="replicate")
    y = F.conv2d(y, kernel.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def low_resolution(x: torch.Tensor, strength: float) -> torch.Tensor:
    """A small face: shrink the batch to (1 - strength * (1 - MIN_LOWRES)) of its side with area
    averaging, then back up bilinearly (one size a call: F.interpolate takes one size)."""
    h, w = x.shape[2:]
    frac = 1 - float(strength) * (1 - MIN_LOWRES)
    small = F.interpolate(x, size=(max(4, round(h * frac)), max(4, round(w * frac))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def sensor_noise(x: torch.Tensor, strength: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    sd = (strength.to(x.dtype) * MAX_NOISE_SD).view(-1, 1, 1, 1)
    return (x + sd * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def _chosen(n: int, p: float, g: torch.Generator | None) -> torch.Tensor:
    """A strength per sample: uniform in (0, 1] where chosen with probability p, else 0."""
    return torch.where(torch.rand(n, generator=g) < p, torch.rand(n, generator=g), torch.zeros(n))


def mesh_turn(faces: torch.Tensor, meshes: np.ndarray, presence: np.ndarray, cfg: AugmentConfig,
              g: torch.Generator | None = None) -> torch.Tensor:
    """uint8 faces (N, H, W[, 3]) of which a share `cfg.mesh_turn` are turned from their own face
    mesh (`emoscope.data.turn.turn_face`) by up to `cfg.mesh_yaw` degrees either way; a face whose
    mesh the landmarker did not find (presence < 0.5) is never turned."""
    from ..data.turn import turn_face
    n = faces.shape[0]
    chosen = (torch.rand(n, generator=g) < cfg.mesh_turn).numpy() & (presence >= 0.5)
    yaws = _uniform(n, -cfg.mesh_yaw, cfg.mesh_yaw, g).numpy()
    if not chosen.any():
        return faces
    out = faces.numpy().copy()
    for i in np.flatnonzero(chosen):
        out[i] = turn_face(out[i], meshes[i], float(yaws[i]))
    return torch.from_numpy(out)


def degrade(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator | None = None) -> torch.Tensor:
    """The real-footage augmentations of `cfg` (head turn, light, blur, small face, noise) on a
    float batch in [0, 1], each at a random strength on a random share of the batch."""
    n = x.shape[0]
    if cfg.yaw or cfg.pitch:
        x = head_turn(x, _uniform(n, -cfg.yaw, cfg.yaw, g), _uniform(n, -cfg.pitch, cfg.pitch, g))
    if cfg.light:
        x = uneven_light(x, _chosen(n, cfg.light, g), _uniform(n, -math.pi, math.pi, g))
    if cfg.blur:
        x = gaussian_blur(x, _chosen(n, cfg.blur, g))
    if cfg.lowres:
        small = torch.rand(n, generator=g) < cfg.lowres
        if small.any():
            x = x.clone()
            x[small] = low_resolution(x[small], float(torch.rand(1, generator=g)))
    if cfg.noise:
        x = sensor_noise(x, _chosen(n, cfg.noise, g), g)
    return x
