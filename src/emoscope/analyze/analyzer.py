"""`Analyzer`: find every face in an image or a video and say which expression it shows."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np
from PIL import Image

from ..contract import CropRule, crop_face
from ..images import pil_to_array, read_image
from ..labels import ValenceRule, valence
from ..mesh import BLENDSHAPES, PRESENCE_THRESHOLD, FaceMesh
from ..runtime import ExpressionClassifier, create_detector
from ..runtime.detector import DETECT_MAX_SIDE, Detection, clip_box
from ..runtime.landmarker import Landmarker
from .face import Face
from .quality import assess
from .tracking import Tracker, appearance, iou, min_track_frames
from .video import VideoReader, check_every

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


# Detect-then-track (video and cameras): a full-frame detection every DETECT_EVERY analysed frames
# and on scene cuts; in between, each tracked face is re-detected in a window LOCAL_WINDOW times
# its size around its predicted box, resized to LOCAL_SIDE pixels (benchmarks/bench_inference.py
# measured the choice).
DETECT_EVERY = 5
LOCAL_WINDOW = 2.0
LOCAL_SIDE = 96
THUMBNAIL_SIDE = 64
ROWS_PER_PART = 2000  # timeline rows gathered as dicts before they become a DataFrame part


class Analyzer:
    """Face detection + expression classification (+ optional gender), torch-free.

    `model` is an ONNX path or an embedded model name ('expression-int8' by default, 'expression').
    `detector` is 'yunet' (default) or 'full-frame' (inputs already cropped to one face);
    `detector_model` is a YuNet path (else $EMOSCOPE_YUNET_MODEL, the cache, or a download).
    In videos a full-frame detection runs every `detect_every` source frames and on scene cuts,
    and tracked faces are re-detected in small windows in between (1: detect every frame).
    `mesh=True` adds MediaPipe's 478-point mesh, 52 blendshapes, head pose, gaze, eyes open,
    attention and approximate action units to every face (`mesh_model`: a face_landmarker.task,
    else $EMOSCOPE_LANDMARKER_MODEL, the cache, or a download); when the model carries a blendshape
    expert (`emoscope blendshape-expert`), those faces' expression is read from the image and the
    blendshapes together (`Face.expression_from`).
    """

    def __init__(self, model: str | None = None, detector: str = "yunet", detector_model: str | None = None,
                 threads: int = 0, flip_tta: bool = False, align: bool = False, gender: bool = False,
                 max_faces: int | None = None, min_score: float = 0.6, detect_max_side: int = DETECT_MAX_SIDE,
                 detect_every: int = DETECT_EVERY, mesh: bool = False, mesh_model: str | None = None):
        self.classifier = ExpressionClassifier(model, threads, flip_tta, align)
        yunet = detector == "yunet"
        kw = {"score_threshold": min_score, "max_side": detect_max_side, "threads": threads} if yunet else {}
        self.detector = create_detector(detector, detector_model, **kw)
        # a second YuNet with a fixed small input for the windows around tracked faces (one thread:
        # more only add synchronisation at 96 px, 0.60 against 0.41 ms)
        self.local_detector = (create_detector(detector, detector_model, **{**kw, "max_side": LOCAL_SIDE, "threads": 1})
                               if yunet else None)
        self.detect_every = check_every(detect_every)
        self.gender = ExpressionClassifier("gender", threads, flip_tta) if gender else None
        self.max_faces = max_faces
        # one thread: the landmark network is small, and a second thread only adds synchronisation
        # (6.2 ms a face against 7.4 with two, measured on the 2-core host)
        self.landmarker = Landmarker(mesh_model, threads=1) if mesh else None
        # The model's own valence thresholds (fitted on real faces at export), else the defaults.
        self.valence_rule = ValenceRule.from_dict(self.classifier.meta.extra.get("valence"))
        # Where the mesh is measured, the model's blendshape expert (if it has one) reads the
        # expression together with the image, with valence thresholds of its own.
        self.expert = self.classifier.meta.blendshape_expert
        self.fused_valence_rule = ValenceRule.from_dict(self.expert.valence) if self.expert else self.valence_rule

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def _classify(self, img: np.ndarray, dets: list[Detection]) -> tuple[np.ndarray, np.ndarray | None]:
        boxes = [d.box for d in dets]
        lms = [d.landmarks for d in dets]
        probs = self.classifier.predict_faces(img, boxes, lms)
        gender = self.gender.predict_faces(img, boxes, lms) if self.gender else None
        return probs, gender

    def _detect(self, img: np.ndarray) -> list[Detection]:
        dets = self.detector.detect(img)
        return dets[: self.max_faces] if self.max_faces else dets

    def _measure(self, img: np.ndarray, dets: list[Detection], mesh: bool | None) -> list[FaceMesh] | None:
        """The face mesh of each detection, when it is on (for this call, else as constructed)."""
        if mesh is None:
            mesh = self.landmarker is not None
        if not mesh:
            return None
        if self.landmarker is None:
            raise ValueError("this analyzer was made without the face landmarker (Analyzer(mesh=True))")
        return [self.landmarker.measure(img, d.box, d.landmarks[:2] if d.landmarks is not None else None) for d in dets]

    def _fused(self, m: FaceMesh | None) -> bool:
        """Whether a face's expression is read from the image and its blendshapes together: the mesh
        was measured and found a face, and the model carries a blendshape expert."""
        return self.expert is not None and m is not None and m.presence >= PRESENCE_THRESHOLD

    def _with_blendshapes(self, probs: np.ndarray, measures: list[FaceMesh] | None) -> np.ndarray:
        fused = [i for i, m in enumerate(measures or []) if self._fused(m)]
        if not fused:
            return probs
        probs = probs.copy()
        blend = np.array([[measures[i].blendshapes[b] for b in BLENDSHAPES] for i in fused])
        probs[fused] = self.expert.fuse(probs[fused], blend)
        return probs

    def _make_face(self, img: np.ndarray, det, probs: np.ndarray, gender: np.ndarray | None, m: FaceMesh | None,
                   track_id=None, raw: np.ndarray | None = None) -> Face:
        p = {c: round(float(v), 5) for c, v in zip(self.classes, probs)}
        vs, vl = valence(p, self.fused_valence_rule if self._fused(m) else self.valence_rule)
        x, y, w, h = det.box
        face = Face((int(round(x)), int(round(y)), int(round(w)), int(round(h))), max(p, key=p.get), p,
                    round(det.score, 4), vl, round(vs, 4),
                    np.round(det.landmarks.astype(np.float64), 1).tolist() if det.landmarks is not None else None, track_id,
                    {c: round(float(v), 4) for c, v in zip(self.gender.classes, gender)} if gender is not None else None,
                    {c: round(float(v), 5) for c, v in zip(self.classes, raw)} if raw is not None else None)
        on_face = m is not None and m.presence >= PRESENCE_THRESHOLD
        if m is not None:
            face.mesh_presence = round(m.presence, 4)
            face.expression_from = "image+blendshapes" if self._fused(m) else "image"
        if on_face:  # a mesh that found no face measures nothing worth drawing or reporting
            face.mesh, face.eyes_open, face.attention = m.mesh, m.eyes_open, m.attention
            face.head_pose = {k: round(v, 2) for k, v in m.head_pose.items()}
            face.gaze = {k: round(v, 2) for k, v in m.gaze.items()}
            face.blendshapes = {k: round(v, 4) for k, v in m.blendshapes.items()}
            face.action_units = {k: round(v, 4) for k, v in m.action_units().items()}
        fit = assess(img, det.box, det.landmarks, det.score, face.head_pose,
                     m.presence if m is not None else None)
        face.quality, face.readable, face.unreadable = fit.quality, fit.readable, fit.reason
        return face

    def analyze(self, image, mesh: bool | None = None) -> list[Face]:
        """All faces in one image (path, PIL image, or BGR array), most confident detection first.
        `mesh` turns the face-mesh measures on or off for this call (default: as constructed)."""
        img = to_bgr(image)
        dets = self._detect(img)
        probs, gender = self._classify(img, dets)
        measures = self._measure(img, dets, mesh)
        probs = self._with_blendshapes(probs, measures)
        return [self._make_face(img, d, probs[i], gender[i] if gender is not None else None,
                                measures[i] if measures else None) for i, d in enumerate(dets)]

    # -- video ----------------------------------------------------------------------------------
    def new_tracker(self, fps: float = 30.0, every: int = 1) -> Tracker:
        """Tracking state for one video or stream of `fps` frames per second of which every
        `every`-th is analysed: tracks survive gaps of up to half a second, and the whole frame is
        searched for new faces every `detect_every` source frames (at least every analysed one)."""
        return Tracker(max_gap=max(3, int(round(fps / every / 2))),
                       detect_every=max(1, int(round(self.detect_every / every))))

    def _redetect(self, frame: np.ndarray, box) -> Detection | None:
        """The face at `box` found again in a small square window around it, or None (no face
        there overlapping the box by IoU 0.3 or more)."""
        x, y, w, h = box
        side = LOCAL_WINDOW * max(w, h)
        x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
        s = max(1, int(round(side)))
        H, W = frame.shape[:2]
        pad = [max(0, -y0), max(0, y0 + s - H), max(0, -x0), max(0, x0 + s - W)]
        patch = frame[max(0, y0):min(H, y0 + s), max(0, x0):min(W, x0 + s)]
        if patch.size == 0:
            return None
        if any(pad):
            patch = cv2.copyMakeBorder(patch, *pad, cv2.BORDER_CONSTANT)
        scale = LOCAL_SIDE / s
        # bilinear even when shrinking: 25x faster than INTER_AREA at these odd ratios, and the
        # boxes it gives agree as well with per-frame detection (benchmarks/bench_inference.py)
        small = cv2.resize(patch, (LOCAL_SIDE, LOCAL_SIDE), interpolation=cv2.INTER_LINEAR)
        found = self.local_detector.detect(small)
        local = [(d.box[0] / scale + x0, d.box[1] / scale + y0, d.box[2] / scale, d.box[3] / scale) for d in found]
        overlap = [iou(b, box) for b in local]
        if not found or max(overlap) < 0.3:
            return None
        best = int(np.argmax(overlap))
        lms = found[best].landmarks
        lms = lms / scale + np.array([x0, y0], np.float32) if lms is not None else None
        return Detection(clip_box(local[best], W, H), found[best].score, lms)

    def _detect_tracked(self, frame: np.ndarray, tracker: Tracker, index: int) -> tuple[list[Detection], list]:
        """Detect-then-track: the whole frame on schedule, on a scene cut or without a local
        detector; otherwise each live track re-detected in its window (a face claimed by two
        tracks goes to the longer one). Returns the detections and, for re-detected ones, the id
        of their track."""
        cut = tracker.scene_cut(frame)
        due = tracker.last_full is None or index - tracker.last_full >= tracker.detect_every
        if cut or due or self.local_detector is None:
            if cut:
                tracker.end_all()
            tracker.last_full = index
            dets = self._detect(frame)
            return dets, [None] * len(dets)
        dets, ids = [], []
        for t in sorted(tracker.live(index), key=lambda t: -t.hits):
            d = self._redetect(frame, t.predict(index))
            if d is not None and all(iou(d.box, k.box) < 0.5 for k in dets):
                dets.append(d)
                ids.append(t.id)
        if self.max_faces:
            dets, ids = dets[: self.max_faces], ids[: self.max_faces]
        return dets, ids

    def track_frame(self, frame: np.ndarray, tracker: Tracker, index: int, mesh: bool | None = None) -> list[Face]:
        """One video or camera frame (BGR): faces with stable `track_id`s and temporally smoothed
        probabilities (`raw_probs`: the frame's own). `index` counts the frames analysed with this
        tracker (0, 1, 2, ...), not the source's frame numbers. The same step serves files,
        cameras and the WebSocket stream."""
        dets, known = self._detect_tracked(frame, tracker, index)
        probs, gender = self._classify(frame, dets)
        measures = self._measure(frame, dets, mesh)
        probs = self._with_blendshapes(probs, measures)
        ids, smooth = tracker.update(index, [d.box for d in dets], probs, [appearance(frame, d.box) for d in dets],
                                     lambda i: self.thumbnail(frame, dets[i].box), [d.score for d in dets], known)
        return [self._make_face(frame, d, smooth[i], gender[i] if gender is not None else None,
                                measures[i] if measures else None, ids[i], probs[i]) for i, d in enumerate(dets)]

    @staticmethod
    def thumbnail(frame: np.ndarray, box) -> np.ndarray:
        """A small colour picture of a face (its box with a margin), for per-person summaries."""
        rgb = crop_face(frame, box, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), "rgb", CropRule(margin=0.15))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    def iter_video(self, source, every: int = 1, tracker: Tracker | None = None, max_frames: int | None = None,
                   progress: bool = True) -> Iterator[tuple[int, float, np.ndarray, list[Face]]]:
        """Yield (frame index, time s, frame, faces) for every `every`-th frame of a file, URL,
        camera index or open `VideoReader` (which then brings its own `every` and `max_frames`).
        Faces carry stable `track_id`s; their probabilities are temporally smoothed. A truncated
        file warns and yields what could be read."""
        video = source if isinstance(source, VideoReader) else VideoReader(source, every, max_frames)
        tracker = tracker or self.new_tracker(video.fps, video.every)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=video.frame_count or None, desc=os.path.basename(str(video.source)), unit="frame",
                       file=sys.stderr, disable=None, leave=False)
        try:
            # the tracker counts analysed frames (its gaps, velocities and detection schedule are
            # in those), whatever `every` skips between them
            for step, (index, frame) in enumerate(video):
                yield index, index / video.fps, frame, self.track_frame(frame, tracker, step)
                if bar is not None:
                    bar.update(video.frames_read - bar.n)
        finally:
            video.close()
            if bar is not None:
                bar.close()

    def analyze_video(self, source, every: int = 1, max_frames: int | None = None, progress: bool = True,
                      on_frame: Callable[[int, float, np.ndarray, list[Face]], None] | None = None) -> Timeline:
        """Analyse a video (a path, URL, camera index or open `VideoReader`) into a Timeline: one
        row per face per analysed frame, with one thumbnail per person."""
        from .timeline import Timeline
        video = source if isinstance(source, VideoReader) else VideoReader(source, every, max_frames)
        tracker = self.new_tracker(video.fps, video.every)
        rows, parts = [], []
        for index, t, frame, faces in self.iter_video(video, tracker=tracker, progress=progress):
            if on_frame:
                on_frame(index, t, frame, faces)
            rows.extend(Timeline.row(index, t, f) for f in faces)
            if len(rows) >= ROWS_PER_PART:
                parts.append(Timeline.rows_frame(rows, self.classes))
                rows = []
        return Timeline.from_rows(rows, self.classes, video.fps, tracker.thumbnails(), min_track_frames(video.every),
                                  parts)
