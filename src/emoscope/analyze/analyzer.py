"""`Analyzer`: find every face in an image or a video and say which expression it shows."""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np
from PIL import Image

from ..images import pil_to_array, read_image
from ..labels import ValenceRule, valence
from ..runtime import ExpressionClassifier, create_detector
from .face import Face
from .tracking import Tracker

if TYPE_CHECKING:
    from .timeline import Timeline


def to_bgr(image) -> np.ndarray:
    """Accept a path, a PIL image or an array (OpenCV BGR/BGRA, gray, 16-bit) and return uint8 BGR."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image), "bgr")
    if isinstance(image, Image.Image):
        return pil_to_array(image, "bgr")
    arr = np.asarray(image)
    if arr.dtype == np.uint16:
        arr = (arr / 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return cv2.cvtColor(arr[..., 0], cv2.COLOR_GRAY2BGR)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise ValueError(f"cannot use an array of shape {arr.shape} as an image")


def video_fps(source) -> float:
    """Frames per second a video declares, or 30 when it declares nothing usable (cameras, streams)."""
    cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    cap.release()
    return fps if 0 < fps < 1000 else 30.0


class Analyzer:
    """Face detection + expression classification (+ optional gender), torch-free.

    `model` is an ONNX path or an embedded model name ('expression-int8' by default, 'expression').
    `detector` is 'yunet' (default) or 'full-frame' (inputs already cropped to one face);
    `detector_model` is a YuNet path (else $EMOSCOPE_YUNET_MODEL, the cache, or a download).
    """

    def __init__(self, model: str | None = None, detector: str = "yunet", detector_model: str | None = None,
                 threads: int = 0, flip_tta: bool = False, align: bool = False, gender: bool = False,
                 max_faces: int | None = None, min_score: float = 0.6, detect_max_side: int = 640):
        self.classifier = ExpressionClassifier(model, threads, flip_tta, align)
        kw = {"score_threshold": min_score, "max_side": detect_max_side} if detector == "yunet" else {}
        self.detector = create_detector(detector, detector_model, **kw)
        self.gender = ExpressionClassifier("gender", threads, flip_tta) if gender else None
        self.max_faces = max_faces
        # The model's own valence thresholds (fitted on real faces at export), else the defaults.
        self.valence_rule = ValenceRule.from_dict(self.classifier.meta.extra.get("valence"))

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def _faces(self, img: np.ndarray) -> tuple[list, np.ndarray, np.ndarray | None]:
        dets = self.detector.detect(img)
        if self.max_faces:
            dets = dets[: self.max_faces]
        boxes = [d.box for d in dets]
        lms = [d.landmarks for d in dets]
        probs = self.classifier.predict_faces(img, boxes, lms)
        gender = self.gender.predict_faces(img, boxes, lms) if self.gender else None
        return dets, probs, gender

    def _make_face(self, det, probs: np.ndarray, gender: np.ndarray | None, track_id=None) -> Face:
        p = {c: round(float(v), 5) for c, v in zip(self.classes, probs)}
        vs, vl = valence(p, self.valence_rule)
        x, y, w, h = det.box
        return Face((int(round(x)), int(round(y)), int(round(w)), int(round(h))), max(p, key=p.get), p,
                    round(det.score, 4), vl, round(vs, 4),
                    np.round(det.landmarks.astype(np.float64), 1).tolist() if det.landmarks is not None else None, track_id,
                    {c: round(float(v), 4) for c, v in zip(self.gender.classes, gender)} if gender is not None else None)

    def analyze(self, image) -> list[Face]:
        """All faces in one image (path, PIL image, or BGR array), most confident detection first."""
        img = to_bgr(image)
        dets, probs, gender = self._faces(img)
        return [self._make_face(d, probs[i], gender[i] if gender is not None else None) for i, d in enumerate(dets)]

    def iter_video(self, source, every: int = 1, tracker: Tracker | None = None, max_frames: int | None = None,
                   progress: bool = True) -> Iterator[tuple[int, float, np.ndarray, list[Face]]]:
        """Yield (frame index, time s, frame, faces) for every `every`-th frame of a file, URL or camera
        index. Faces carry stable `track_id`s; their probabilities are temporally smoothed."""
        cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
        if not cap.isOpened():
            raise ValueError(f"cannot open video {source!r}")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        fps = fps if 0 < fps < 1000 else 30.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        tracker = tracker or Tracker(max_gap=max(3, int(round(fps / 2 / every))))
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total or None, desc=os.path.basename(str(source)), unit="frame", file=sys.stderr,
                       disable=None, leave=False)
        index = 0
        try:
            while max_frames is None or index < max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % every == 0:
                    dets, probs, gender = self._faces(frame)
                    ids, smooth = tracker.update(index, [d.box for d in dets], probs)
                    faces = [self._make_face(d, smooth[i], gender[i] if gender is not None else None, ids[i])
                             for i, d in enumerate(dets)]
                    yield index, index / fps, frame, faces
                index += 1
                if bar is not None:
                    bar.update(1)
        finally:
            cap.release()
            if bar is not None:
                bar.close()
        if total and index < total - 1 and (max_frames is None or index < max_frames) and str(source).isdigit() is False:
            warnings.warn(f"{source}: video ended after {index} of {total} frames (truncated or damaged); "
                          f"results cover the frames that could be read", RuntimeWarning, stacklevel=2)

    def analyze_video(self, source, every: int = 1, max_frames: int | None = None, progress: bool = True,
                      on_frame: Callable[[int, float, np.ndarray, list[Face]], None] | None = None) -> Timeline:
        """Analyse a video into a Timeline: one row per face per analysed frame."""
        from .timeline import Timeline
        rows = []
        for index, t, frame, faces in self.iter_video(source, every, max_frames=max_frames, progress=progress):
            if on_frame:
                on_frame(index, t, frame, faces)
            rows.extend(Timeline.row(index, t, f) for f in faces)
        return Timeline.from_rows(rows, self.classes, video_fps(source))
