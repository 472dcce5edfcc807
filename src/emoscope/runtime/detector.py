"""Face detectors. YuNet (OpenCV's FaceDetectorYN) is the default. The fallback needs no download:
OpenCV 5 dropped the Haar cascades from its main module and every other detector is a download too,
so the fallback treats the whole frame as one face, which is right for images that are already
face crops (FER2013-style datasets, cropped exports) and says so."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .assets import yunet_model


DETECT_MAX_SIDE = 640  # frames are scaled so their longer side is at most this before detection


def clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    """A box (x, y, w, h) cut to the image: no negative coordinates, nothing past the edges."""
    x, y, w, h = box
    x0, y0 = min(max(0.0, x), width), min(max(0.0, y), height)
    x1, y1 = min(max(x0, x + w), width), min(max(y0, y + h), height)
    return (x0, y0, x1 - x0, y1 - y0)


@dataclass
class Detection:
    box: tuple[float, float, float, float]          # x, y, w, h in pixels
    score: float
    landmarks: np.ndarray | None = None             # (5, 2): right eye, left eye, nose, mouth right, mouth left


class FaceDetector:
    """Interface: `detect(image_bgr) -> list[Detection]`, best first."""

    name = "base"

    def detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError


class YuNetDetector(FaceDetector):
    """YuNet via cv2.FaceDetectorYN. Large frames are scaled so the longer side is at most
    `max_side` before detection (speed); boxes come back in original pixels, clipped to the image."""

    name = "yunet"

    def __init__(self, model_path: str | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = DETECT_MAX_SIDE, top_k: int = 5000):
        self.model_path = yunet_model(model_path)
        self.max_side = max_side
        # OpenCV 5 warns on every creation that the new graph engine ignores the preferable target
        # (it runs on the CPU either way); keep that line out of users' output.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN.create(self.model_path, "", (320, 320), score_threshold, nms_threshold,
                                                  top_k)
        finally:
            cv2.utils.logging.setLogLevel(level)
        self._size: tuple[int, int] | None = None

    def detect(self, image: np.ndarray) -> list[Detection]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA) if scale < 1 else image
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(small)
        if faces is None:
            return []
        out = []
        for f in faces[np.argsort(-faces[:, 14])]:
            box = clip_box((f[:4] / scale).tolist(), w, h)
            out.append(Detection(box, float(f[14]), (f[4:14].reshape(5, 2) / scale).astype(np.float32)))
        return out


class FullFrameDetector(FaceDetector):
    """Treat the whole image as one face: for inputs that are already face crops."""

    name = "full-frame"

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        return [Detection((0.0, 0.0, float(w), float(h)), 1.0, None)]


def create_detector(kind: str = "yunet", model_path: str | None = None, **kw) -> FaceDetector:
    if kind == "yunet":
        return YuNetDetector(model_path, **kw)
    if kind in ("full-frame", "none"):
        return FullFrameDetector()
    raise ValueError(f"unknown detector {kind!r} (yunet, full-frame)")
