"""The model contract, in one place: what an emoscope ONNX file says about itself (its metadata
keys), how a detected face box becomes the model's input (the crop rule) and how uint8 pixels are
normalised. Export writes it, the runtime classifier, the ONNX teacher, the evaluator, the
detector-cropped training data and the server read it. Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .metrics import softmax

# Applied after scaling pixels to [0, 1]: x = (pixel / 255 - mean) / std.
NORM_MEAN, NORM_STD = 0.5, 0.5
IMG_SIZE = 48                     # FER2013's side; the default input of every expression model
REQUIRED_KEYS = ("classes", "input_size", "color", "mean", "std")


class ModelMetadataError(ValueError):
    """The ONNX file lacks the metadata emoscope needs to preprocess its input."""


@dataclass(frozen=True)
class CropRule:
    """How a face box becomes the model input: grow the box by `margin` of its size on every side,
    make it square around its centre (`square`), resize to the input size, and histogram-equalise
    gray crops when `equalize` (models trained on equalised faces)."""

    margin: float = 0.1
    square: bool = True
    equalize: bool = False

    @classmethod
    def from_dict(cls, d: dict | None) -> "CropRule":
        d = d or {}
        return cls(float(d.get("margin", cls.margin)), bool(d.get("square", cls.square)),
                   bool(d.get("equalize", cls.equalize)))


@dataclass
class ModelMeta:
    """The metadata of an emoscope ONNX file. `input_size` is always (height, width)."""

    classes: list[str]
    input_size: tuple[int, int] = (IMG_SIZE, IMG_SIZE)
    color: str = "gray"                       # gray | rgb
    mean: float | list[float] = NORM_MEAN
    std: float | list[float] = NORM_STD
    crop: CropRule = field(default_factory=CropRule)
    temperature: float = 1.0
    output: str = "logits"                    # logits | probabilities
    extra: dict = field(default_factory=dict)  # architecture, producer, holdout, metrics, valence, ...
    # Added to logits / temperature before the softmax: per-class offsets fitted on validation
    # photos so that every expression is recalled, not only the frequent ones (export).
    class_bias: list[float] | None = None

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    @property
    def blendshape_expert(self) -> "BlendshapeExpert | None":
        d = self.extra.get(BlendshapeExpert.KEY)
        return BlendshapeExpert.from_dict(d) if d else None

    def to_props(self) -> dict[str, str]:
        """The ONNX `metadata_props` (every value a string; JSON where it is not plain text)."""
        props = {"classes": json.dumps(self.classes), "input_size": json.dumps(list(self.input_size)),
                 "color": self.color, "mean": json.dumps(self.mean), "std": json.dumps(self.std),
                 "crop": json.dumps(asdict(self.crop)), "temperature": json.dumps(round(float(self.temperature), 4)),
                 "output": self.output}
        if self.class_bias is not None:
            props["class_bias"] = json.dumps([round(float(b), 4) for b in self.class_bias])
        props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in self.extra.items()})
        return props

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, classes) from the model's raw outputs."""
        if self.output == "probabilities":
            return np.asarray(logits, np.float32)
        return softmax(logits, self.temperature, self.class_bias).astype(np.float32)

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> "ModelMeta":
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelMetadataError(f"{where}: ONNX metadata_props lack {', '.join(missing)} "
                                     f"(see docs/model-card.md)")
        size = json.loads(props["input_size"])
        size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))
        known = set(REQUIRED_KEYS) | {"crop", "temperature", "output", "class_bias"}
        extra = {}
        for k, v in props.items():
            if k not in known:
                try:
                    extra[k] = json.loads(v)
                except ValueError:
                    extra[k] = v
        return cls(json.loads(props["classes"]), size, props["color"], json.loads(props["mean"]),
                   json.loads(props["std"]), CropRule.from_dict(json.loads(props.get("crop", "{}"))),
                   float(json.loads(props.get("temperature", "1.0"))), props.get("output", "logits"), extra,
                   json.loads(props["class_bias"]) if "class_bias" in props else None)


@dataclass(frozen=True)
class BlendshapeExpert:
    """A second reading of the expression from the face mesh's 52 blendshapes
    (`emoscope.mesh.BLENDSHAPES` order): a balanced multinomial logistic regression on standardised
    blendshapes, fitted on photos of people the weight and calibration were not chosen on. Where
    the mesh is measured, the expression is softmax((log p_image + weight * log p_blendshapes) /
    temperature), with its own valence thresholds. Stored in the expression model's metadata under
    `KEY`, because `weight`, `temperature` and `valence` are fitted against that model's outputs
    (`emoscope blendshape-expert`)."""

    KEY = "blendshape_expert"
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]       # classes x blendshapes
    intercept: tuple[float, ...]
    weight: float
    temperature: float = 1.0
    valence: dict | None = None               # ValenceRule thresholds for the fused probabilities
    fitted: dict = field(default_factory=dict)  # provenance: data, parts, photos, validation scores

    @classmethod
    def from_dict(cls, d: dict) -> "BlendshapeExpert":
        return cls(tuple(d["mean"]), tuple(d["scale"]), tuple(tuple(r) for r in d["coef"]), tuple(d["intercept"]),
                   float(d["weight"]), float(d.get("temperature", 1.0)), d.get("valence"), d.get("fitted", {}))

    def to_dict(self) -> dict:
        r = lambda v: [round(float(x), 6) for x in v]  # noqa: E731
        return {"mean": r(self.mean), "scale": r(self.scale), "coef": [r(c) for c in self.coef],
                "intercept": r(self.intercept), "weight": round(self.weight, 4),
                "temperature": round(self.temperature, 4), "valence": self.valence, "fitted": self.fitted}

    def log_probs(self, blendshapes: np.ndarray) -> np.ndarray:
        """(N, 52) blendshapes -> (N, classes) log-probabilities of the blendshape reading alone."""
        x = (np.asarray(blendshapes, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = x @ np.asarray(self.coef).T + np.asarray(self.intercept)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def fused_logits(self, probs: np.ndarray, blendshapes: np.ndarray, weight: float | None = None) -> np.ndarray:
        """log p_image + weight * log p_blendshapes, before the temperature."""
        w = self.weight if weight is None else weight
        return np.log(np.clip(np.asarray(probs, np.float64), 1e-6, 1.0)) + w * self.log_probs(blendshapes)

    def fuse(self, probs: np.ndarray, blendshapes: np.ndarray) -> np.ndarray:
        """The image model's calibrated probabilities (N, classes) read together with the blendshapes."""
        return softmax(self.fused_logits(probs, blendshapes), self.temperature).astype(np.float32)


def is_onnx_path(model: str) -> bool:
    """An exported model file (as opposed to a training run folder or checkpoint)."""
    return str(model).lower().endswith(".onnx")


def normalize_u8(images: np.ndarray, mean=NORM_MEAN, std=NORM_STD) -> np.ndarray:
    """uint8 images (N, H, W) gray or (N, H, W, 3) colour -> normalised float32 NCHW."""
    x = images.astype(np.float32) / 255.0
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if mean.ndim:
        mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
    return np.ascontiguousarray((x - mean) / std)


def crop_face(image: np.ndarray, box, size: tuple[int, int], color: str = "gray", rule: CropRule = CropRule(),
              landmarks: np.ndarray | None = None, align: bool = False) -> np.ndarray:
    """One face as model input, uint8: gray (H, W) or RGB (H, W, 3), from a BGR or gray `image` and
    a box (x, y, w, h) in pixels. With `align` and landmarks (right eye, left eye first), the crop
    is rotated so the eyes are level. Parts of the box outside the image repeat the border."""
    h_in, w_in = size
    gray = color == "gray"
    if gray and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif not gray and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    if rule.square:
        w = h = max(w, h)
    w, h = w * (1 + 2 * rule.margin), h * (1 + 2 * rule.margin)
    angle = 0.0
    if align and landmarks is not None:
        (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    if angle == 0.0:
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        x1, y1 = x0 + max(1, int(round(w))), y0 + max(1, int(round(h)))
        H, W = image.shape[:2]
        pad = [max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W)]
        patch = image[max(0, y0):min(H, y1), max(0, x0):min(W, x1)]
        if any(pad):
            patch = cv2.copyMakeBorder(patch, *pad, cv2.BORDER_REPLICATE)
        interp = cv2.INTER_AREA if patch.shape[0] > h_in else cv2.INTER_LINEAR
        out = cv2.resize(patch, (w_in, h_in), interpolation=interp)
    else:
        M = cv2.getRotationMatrix2D((cx, cy), angle, w_in / w)
        M[0, 2] += w_in / 2 - cx
        M[1, 2] += h_in / 2 - cy
        out = cv2.warpAffine(image, M, (w_in, h_in), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if gray and rule.equalize:
        out = cv2.equalizeHist(out)
    if not gray:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out



def write_props(proto, props: dict[str, str]) -> None:
    """Replace the metadata_props of an ONNX ModelProto (loaded with the `onnx` package)."""
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)


def update_props(path: str, changes) -> dict[str, str]:
    """Rewrite the metadata of the ONNX file at `path` with `changes(props)` (a function that edits
    the dict of its metadata_props in place); returns the new props."""
    import onnx
    proto = onnx.load(path)
    props = {p.key: p.value for p in proto.metadata_props}
    changes(props)
    write_props(proto, props)
    tmp = path + ".tmp"
    onnx.save(proto, tmp)
    os.replace(tmp, path)
    return props


def record_metrics(path: str, key: str, numbers: dict) -> dict:
    """Store `numbers` under `key` in the `metrics` metadata of the ONNX file at `path` (what
    `/v1/model` and the model card report); returns all its recorded metrics."""
    def add(props):
        metrics = json.loads(props.get("metrics", "{}"))
        metrics[key] = numbers
        props["metrics"] = json.dumps(metrics)
    return json.loads(update_props(path, add)["metrics"])
