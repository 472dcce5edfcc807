"""ONNX face classifier driven entirely by the model's metadata (classes, input size, colour,
mean/std, crop, temperature), so any conforming ONNX file works — ours or someone else's."""

from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np
import onnxruntime as ort

from ..metrics import softmax
from .assets import embedded_model

REQUIRED_META = ("classes", "input_size", "color", "mean", "std")


class ModelMetadataError(ValueError):
    """The ONNX file lacks the metadata emoscope needs to preprocess its input."""


def read_metadata(session: ort.InferenceSession, path: str) -> dict:
    raw = session.get_modelmeta().custom_metadata_map
    missing = [k for k in REQUIRED_META if k not in raw]
    if missing:
        raise ModelMetadataError(f"{path}: ONNX metadata_props lack {', '.join(missing)} (see docs/model-card.md)")
    return {
        "classes": json.loads(raw["classes"]), "input_size": tuple(json.loads(raw["input_size"])),
        "color": raw["color"], "mean": np.asarray(json.loads(raw["mean"]), np.float32),
        "std": np.asarray(json.loads(raw["std"]), np.float32),
        "crop": json.loads(raw.get("crop", '{"margin": 0.0, "square": true}')),
        "temperature": float(json.loads(raw.get("temperature", "1.0"))),
        "output": raw.get("output", "logits"), "raw": dict(raw),
    }


# The embedded int8 model is the default: about 4x faster than fp32 at the same accuracy
# (docs/model-card.md); "expression" names the fp32 original.
DEFAULT_MODEL = "expression-int8"


def resolve_model(model: str | None) -> str:
    """A file path, or the name of an embedded model ('expression', 'expression-int8', 'gender')."""
    model = model or DEFAULT_MODEL
    if os.sep in model or model.endswith(".onnx"):
        return model
    return embedded_model(model)


class ExpressionClassifier:
    """Batched onnxruntime classifier of face crops. `model` is a path or an embedded model name;
    `threads` caps intra-op threads (0: onnxruntime's default)."""

    def __init__(self, model_path: str | None = None, threads: int = 0, flip_tta: bool = False,
                 align: bool = False):
        self.model_path = resolve_model(model_path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.model_path, opts, providers=["CPUExecutionProvider"])
        self.meta = read_metadata(self.session, self.model_path)
        self.classes: list[str] = self.meta["classes"]
        self.input_name = self.session.get_inputs()[0].name
        self.flip_tta = flip_tta
        self.align = align

    # -- preprocessing --------------------------------------------------------------------------
    def crop(self, image: np.ndarray, box, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Face crop as the model card says: grow the box by `margin` per side, square it, resize,
        histogram-equalise if `equalize`. With `align` and landmarks, rotate so the eyes are level."""
        h_in, w_in = self.meta["input_size"]
        gray = self.meta["color"] == "gray"
        if gray and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif not gray and image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        x, y, w, h = box
        m = float(self.meta["crop"].get("margin", 0.0))
        cx, cy = x + w / 2, y + h / 2
        if self.meta["crop"].get("square", True):
            w = h = max(w, h)
        w, h = w * (1 + 2 * m), h * (1 + 2 * m)
        angle = 0.0
        if self.align and landmarks is not None:
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
        if gray and self.meta["crop"].get("equalize"):
            out = cv2.equalizeHist(out)  # the training faces were histogram-equalised (FER2013)
        if not gray:
            out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
        return out

    def to_tensor(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W[, 3]) -> normalised float32 NCHW."""
        x = crops.astype(np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        mean, std = self.meta["mean"], self.meta["std"]
        if mean.ndim:
            mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
        return np.ascontiguousarray((x - mean) / std)

    # -- inference ------------------------------------------------------------------------------
    def logits(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        """Raw model outputs (averaged with the mirror image when flip TTA is on)."""
        out = []
        for i in range(0, len(crops), batch):
            x = self.to_tensor(crops[i:i + batch])
            y = self.session.run(None, {self.input_name: x})[0]
            if self.flip_tta:
                y = (y + self.session.run(None, {self.input_name: np.ascontiguousarray(x[..., ::-1])})[0]) / 2
            out.append(y)
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, classes) for uint8 crops."""
        y = self.logits(crops)
        if self.meta["output"] == "probabilities":
            return y
        return softmax(y, self.meta["temperature"]).astype(np.float32)

    def predict_faces(self, image: np.ndarray, boxes, landmarks=None) -> np.ndarray:
        """Probabilities for each box in `image`."""
        if len(boxes) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        lms = landmarks if landmarks is not None else [None] * len(boxes)
        crops = np.stack([self.crop(image, b, l) for b, l in zip(boxes, lms)])
        return self.predict(crops)
