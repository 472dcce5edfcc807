"""ONNX face classifier driven entirely by the model's metadata (classes, input size, colour,
mean/std, crop, temperature), so any conforming ONNX file works — ours or someone else's."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from ..contract import ModelMeta, crop_face, is_onnx_path, normalize_u8
from .assets import embedded_model
from .session import cpu_session


def read_metadata(session: ort.InferenceSession, path: str) -> ModelMeta:
    """The contract an ONNX session's file states about itself (raises ModelMetadataError)."""
    return ModelMeta.from_props(dict(session.get_modelmeta().custom_metadata_map), path)


# The embedded int8 model is the default: about 4x faster than fp32 at the same accuracy
# (docs/model-card.md); "expression" names the fp32 original. "fast" is the two-CNN ensemble that
# was the default from 2026-12-03 to 2026-12-06, named when it was the faster one; since 2026-12-07
# the default (EfficientNet-Lite0 and one CNN) is faster than it, and it is kept for comparison.
DEFAULT_MODEL = "expression-int8"
EMBEDDED_ALIASES = {"fast": "expression-fast-int8"}


def resolve_model(model: str | None) -> str:
    """A file path, or the name of an embedded model ('expression', 'expression-int8', 'fast',
    'gender')."""
    model = model or DEFAULT_MODEL
    if os.sep in model or is_onnx_path(model):
        return model
    return embedded_model(EMBEDDED_ALIASES.get(model, model))


class ExpressionClassifier:
    """Batched onnxruntime classifier of face crops. `model` is a path or an embedded model name;
    `threads` caps intra-op threads (0: onnxruntime's default)."""

    def __init__(self, model_path: str | None = None, threads: int = 0, flip_tta: bool = False,
                 align: bool = False):
        self.model_path = resolve_model(model_path)
        self.session = cpu_session(self.model_path, threads)
        self.meta = read_metadata(self.session, self.model_path)
        self.classes: list[str] = self.meta.classes
        self.input_name = self.session.get_inputs()[0].name
        self.flip_tta = flip_tta
        self.align = align

    # -- preprocessing --------------------------------------------------------------------------
    def crop(self, image: np.ndarray, box, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Face crop by the model's crop rule (`emoscope.contract.crop_face`)."""
        m = self.meta
        return crop_face(image, box, m.input_size, m.color, m.crop, landmarks, self.align)

    def to_tensor(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, H, W[, 3]) -> normalised float32 NCHW."""
        return normalize_u8(crops, self.meta.mean, self.meta.std)

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
        return self.meta.probabilities(self.logits(crops))

    def predict_faces(self, faces) -> np.ndarray:
        """Probabilities for faces given as (image, box, landmarks or None) triples, from one image
        or several, read in one batch."""
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict(np.stack([self.crop(image, box, lms) for image, box, lms in faces]))
