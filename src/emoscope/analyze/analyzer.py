"""`Analyzer`: find every face in an image or a video and say which expression it shows."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np
from PIL import Image

from ..contract import CropRule, crop_face
from ..images import pil_to_array, read_image
from ..labels import ValenceRule, valence
from ..mesh import BLENDSHAPES, PRESENCE_THRESHOLD, FaceMesh, extent, five_points
from ..runtime import ExpressionClassifier, create_detector
from ..runtime.detector import DETECT_MAX_SIDE, Detection, clip_box
from ..runtime.landmarker import Landmarker
from .face import Face
from .quality import assess
from .tracking import Track, Tracker, appearance, iou, min_track_frames
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
# A tracked face's expression is read every CLASSIFY_EVERY source frames and carried in between
# (new faces and faces whose track is unsure are always read).
CLASSIFY_EVERY = 1
LOCAL_WINDOW = 2.0
LOCAL_SIDE = 96
THUMBNAIL_SIDE = 64
# A file's frames are located (faces found, measured and matched to tracks) FRAMES_PER_READ at a
# time and their faces read by the classifier in one batch: 2.9 ms a face against 4.0 one at a
# time (the default model on 2 threads, a 2-core AMD Zen 2); the batch is read on the worker
# thread while the next frames are located (177 against 160 FPS, one face at 640x480). Cameras and
# streams read each frame as it comes, and so do files with the mesh on, whose landmarker thread
# measures the next frame's faces while this one's are read. Larger frames are read fewer at a
# time, so the frames of a batch stay within READ_PIXELS (1280x720: 8, 1920x1080: 3, 4K: 1) and
# those held, the batch being read and the one being located, within twice that.
FRAMES_PER_READ = 8
READ_PIXELS = FRAMES_PER_READ * 1280 * 720


def frames_per_read(frame: np.ndarray) -> int:
    """How many of a file's frames of this size are read together."""
    return max(1, min(FRAMES_PER_READ, READ_PIXELS // (frame.shape[0] * frame.shape[1])))
ROWS_PER_PART = 2000  # timeline rows gathered as dicts before they become a DataFrame part


@dataclass
class LocatedFrame:
    """A video frame whose faces are found, measured and matched to their tracks, and for each
    whether the classifier reads it (else it carries its track's reading)."""
    frame: np.ndarray
    dets: list[Detection]
    tracks: list[Track]
    read: list[bool]
    measures: list[FaceMesh] | None


class Analyzer:
    """Face detection + expression classification (+ optional gender), torch-free.

    `model` is an ONNX path or an embedded model name ('expression-int8' by default, 'expression', 'fast').
    `detector` is 'yunet' (default) or 'full-frame' (inputs already cropped to one face);
    `detector_model` is a YuNet path (else $EMOSCOPE_YUNET_MODEL, the cache, or a download).
    In videos a full-frame detection runs every `detect_every` source frames and on scene cuts,
    and tracked faces are re-detected in small windows in between (1: detect every frame).
    `mesh=True` adds MediaPipe's 478-point mesh, 52 blendshapes, head pose, gaze, eyes open,
    attention and approximate action units to every face (`mesh_model`: a face_landmarker.task,
    else $EMOSCOPE_LANDMARKER_MODEL, the cache, or a download); when the model carries a blendshape
    expert (`emoscope blendshape-expert`), those faces' expression is read from the image and the
    blendshapes together (`Face.expression_from`). With the mesh on, a tracked face between
    full-frame detections is found from its previous frame's mesh, as MediaPipe tracks, and
    re-detected only where that mesh loses it (`seed_mesh=False`: re-detected in every frame); its
    `score` is then its last detection's. In videos a tracked face's expression is read by the
    classifier every `classify_every` source frames and its last reading carried in between (with
    the mesh on, fused with each frame's own blendshapes); `Face.classified` says which.
    """

    def __init__(self, model: str | None = None, detector: str = "yunet", detector_model: str | None = None,
                 threads: int = 0, flip_tta: bool = False, align: bool = False, gender: bool = False,
                 max_faces: int | None = None, min_score: float = 0.6, detect_max_side: int = DETECT_MAX_SIDE,
                 detect_every: int = DETECT_EVERY, mesh: bool = False, mesh_model: str | None = None,
                 seed_mesh: bool = True, classify_every: int = CLASSIFY_EVERY):
        # with the mesh on, the landmarker's thread has a core of its own
        self.classifier = ExpressionClassifier(model, max(1, (threads or os.cpu_count() or 1) - 1) if mesh else threads,
                                               flip_tta, align)
        yunet = detector == "yunet"
        # up to 640 px YuNet is as fast on one thread as on two (8.1 against 9.1 ms a 1280x720 frame,
        # the 2-core host), and a second one competes with the classifier reading a file's frames
        # meanwhile (181 against 171 FPS); at 1280 px two threads pay (26 against 33 ms)
        kw = {"score_threshold": min_score, "max_side": detect_max_side,
              "threads": 1 if detect_max_side <= DETECT_MAX_SIDE else threads} if yunet else {}
        self.detector = create_detector(detector, detector_model, **kw)
        # a second YuNet with a fixed small input for the windows around tracked faces (one thread:
        # more only add synchronisation at 96 px, 0.60 against 0.41 ms)
        self.local_detector = (create_detector(detector, detector_model, **{**kw, "max_side": LOCAL_SIDE, "threads": 1})
                               if yunet else None)
        self.detect_every = check_every(detect_every, "detect_every")
        self.classify_every = check_every(classify_every, "classify_every")
        self.gender = ExpressionClassifier("gender", threads, flip_tta) if gender else None
        self.max_faces = max_faces
        # one thread: the landmark network is small, and a second thread only adds synchronisation
        # (6.2 ms a face against 7.4 with two, measured on the 2-core host)
        self.landmarker = Landmarker(mesh_model, threads=1) if mesh else None
        self.seed_mesh = seed_mesh
        self._thread: ThreadPoolExecutor | None = None
        # The model's own valence thresholds (fitted on real faces at export), else the defaults.
        self.valence_rule = ValenceRule.from_dict(self.classifier.meta.extra.get("valence"))
        # Where the mesh is measured, the model's blendshape expert (if it has one) reads the
        # expression together with the image, with valence thresholds of its own.
        self.expert = self.classifier.meta.blendshape_expert
        self.fused_valence_rule = ValenceRule.from_dict(self.expert.valence) if self.expert else self.valence_rule

    @property
    def classes(self) -> list[str]:
        return self.classifier.classes

    def _classify(self, faces: list[tuple[np.ndarray, Detection]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Image probabilities (and gender) of faces given as (image, detection) pairs, from one
        frame or several, in one batch."""
        triples = [(img, d.box, d.landmarks) for img, d in faces]
        return self.classifier.predict_faces(triples), self.gender.predict_faces(triples) if self.gender else None

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
        return [self._measure_one(img, d) for d in dets]

    def _measure_one(self, img: np.ndarray, d: Detection) -> FaceMesh:
        return self.landmarker.measure(img, d.box, d.landmarks[:2] if d.landmarks is not None else None)

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
                   track_id=None, raw: np.ndarray | None = None, classified: bool | None = None) -> Face:
        p = {c: round(float(v), 5) for c, v in zip(self.classes, probs)}
        vs, vl = valence(p, self.fused_valence_rule if self._fused(m) else self.valence_rule)
        x, y, w, h = det.box
        face = Face((int(round(x)), int(round(y)), int(round(w)), int(round(h))), max(p, key=p.get), p,
                    round(det.score, 4), vl, round(vs, 4),
                    np.round(det.landmarks.astype(np.float64), 1).tolist() if det.landmarks is not None else None, track_id,
                    {c: round(float(v), 4) for c, v in zip(self.gender.classes, gender)} if gender is not None else None,
                    {c: round(float(v), 5) for c, v in zip(self.classes, raw)} if raw is not None else None,
                    classified=classified)
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
        probs, gender = self._classify([(img, d) for d in dets])
        measures = self._measure(img, dets, mesh)
        probs = self._with_blendshapes(probs, measures)
        return [self._make_face(img, d, probs[i], gender[i] if gender is not None else None,
                                measures[i] if measures else None) for i, d in enumerate(dets)]

    # -- video ----------------------------------------------------------------------------------
    def new_tracker(self, fps: float = 30.0, every: int = 1) -> Tracker:
        """Tracking state for one video or stream of `fps` frames per second of which every
        `every`-th is analysed: tracks survive gaps of up to half a second, the whole frame is
        searched for new faces every `detect_every` source frames and a tracked face's expression
        read every `classify_every` (each at least every analysed frame)."""
        return Tracker(max_gap=max(3, int(round(fps / every / 2))),
                       detect_every=max(1, int(round(self.detect_every / every))),
                       classify_every=max(1, int(round(self.classify_every / every))))

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

    def _mesh_seeds(self, tracker: Tracker, index: int) -> dict[int, Detection]:
        """Tracks seen in the previous frame whose mesh found them: the detections their meshes
        predict, by track id (a face claimed by two tracks goes to the longer one)."""
        seeds: dict[int, Detection] = {}
        for t in sorted(tracker.live(index, max_age=1), key=lambda t: -t.hits):
            fresh = t.mesh_seed is not None and t.mesh_frame == index - 1
            if fresh and all(iou(t.mesh_seed.box, k.box) < 0.5 for k in seeds.values()):
                seeds[t.id] = t.mesh_seed
        return dict(list(seeds.items())[: self.max_faces]) if self.max_faces else seeds

    def _detect_tracked(self, frame: np.ndarray, tracker: Tracker, index: int, cut: bool,
                        seeds: dict[int, Detection]) -> tuple[list[Detection], list]:
        """Detect-then-track, for the faces not already found from their mesh (`seeds`, whose
        scores a full-frame detection refreshes): the whole frame on schedule, on a scene cut or
        without a local detector; otherwise each other live track re-detected in its window (a
        face claimed by two tracks goes to the longer one). Returns the detections and, for
        re-detected ones, the id of their track."""
        due = tracker.last_full is None or index - tracker.last_full >= tracker.detect_every
        if cut or due or self.local_detector is None:
            tracker.last_full = index
            dets = []
            for d in self._detect(frame):
                same = [tid for tid, s in seeds.items() if iou(d.box, s.box) >= 0.5]
                for tid in same:
                    seeds[tid] = replace(seeds[tid], score=d.score)
                if not same:
                    dets.append(d)
            room = self.max_faces - len(seeds) if self.max_faces else None
            return dets[:room], [None] * len(dets[:room])
        dets, ids = [], []
        for t in sorted(tracker.live(index), key=lambda t: -t.hits):
            if t.id in seeds:
                continue
            d = self._redetect(frame, t.predict(index))
            if d is not None and all(iou(d.box, k.box) < 0.5 for k in [*seeds.values(), *dets]):
                dets.append(d)
                ids.append(t.id)
        if self.max_faces:
            dets, ids = dets[: self.max_faces - len(seeds)], ids[: self.max_faces - len(seeds)]
        return dets, ids

    def track_frame(self, frame: np.ndarray, tracker: Tracker, index: int, mesh: bool | None = None,
                    upcoming: np.ndarray | None = None) -> list[Face]:
        """One video or camera frame (BGR): faces with stable `track_id`s and temporally smoothed
        probabilities (`raw_probs`: the frame's own). `index` counts the frames analysed with this
        tracker (0, 1, 2, ...), not the source's frame numbers. The same step serves files,
        cameras and the WebSocket stream. `upcoming`, the next frame to be analysed when it is
        already known (a file): with the mesh, the faces tracked by their mesh into it are
        measured while this frame is finished; the result is the same as without it."""
        return self._read_frames(tracker, [self._locate(frame, tracker, index, mesh, upcoming)])[0]

    def _locate(self, frame: np.ndarray, tracker: Tracker, index: int, mesh: bool | None,
                upcoming: np.ndarray | None) -> LocatedFrame:
        """A frame's faces found (detect-then-track), measured and matched to tracks; which of them
        the classifier reads is decided, their reading is left to `_read_frames`."""
        meshing = self.landmarker is not None if mesh is None else mesh
        cut = tracker.scene_cut(frame)
        if cut:
            tracker.end_all()
        ahead, tracker.meshing_ahead = tracker.meshing_ahead, None
        if ahead is not None and ahead[:2] == (index, mesh) and not cut:
            _, _, seeds, seeded_meshes = ahead
        else:
            seeds = self._mesh_seeds(tracker, index) if meshing and self.seed_mesh and not cut else {}
            seeded_meshes = None
        # meshes are measured on one core (the landmarker's thread) while the other detects
        worker = self._worker() if meshing else None
        if seeds and seeded_meshes is None:
            seeded_meshes = worker.submit(self._measure, frame, list(seeds.values()), mesh)
        found, found_ids = self._detect_tracked(frame, tracker, index, cut, seeds)
        found_meshes = worker.submit(self._measure, frame, found, mesh) if worker and found else None
        dets, known = [*seeds.values(), *found], [*seeds, *found_ids]
        if tracker.classify_every > 1:  # a face carries its track's reading only where the track is sure
            known = tracker.presume(index, [d.box for d in dets], known)
        seeded = [True] * len(seeds) + [False] * len(found)
        measures = None
        if meshing:
            measures = [*(seeded_meshes.result() if seeded_meshes else []),
                        *(found_meshes.result() if found_meshes else [])]
        if any(s and m.presence < PRESENCE_THRESHOLD for s, m in zip(seeded, measures or [])):
            dets, known, seeded, measures = self._redetect_lost(frame, tracker, index, dets, known, seeded, measures)
        tracks = tracker.assign(index, [d.box for d in dets], [appearance(frame, d.box) for d in dets],
                                lambda i: self.thumbnail(frame, dets[i].box), [d.score for d in dets], known)
        read = [tracker.due(t, tid, index) for t, tid in zip(tracks, known)]
        for t, r in zip(tracks, read):
            if r:
                t.read_frame = index
        if measures and self.seed_mesh:
            self._seed_next(frame, index, tracks, dets, seeded, measures)
            following = self._mesh_seeds(tracker, index + 1) if upcoming is not None else None
            if following:
                tracker.meshing_ahead = (index + 1, mesh, following,
                                         worker.submit(self._measure, upcoming, list(following.values()), mesh))
        return LocatedFrame(frame, dets, tracks, read, measures)

    @staticmethod
    def _due(located: list[LocatedFrame]) -> list[tuple[np.ndarray, Detection]]:
        """The faces of located frames that the classifier reads, in order."""
        return [(loc.frame, d) for loc in located for d, r in zip(loc.dets, loc.read) if r]

    def _read_frames(self, tracker: Tracker, located: list[LocatedFrame],
                     readings: tuple[np.ndarray, np.ndarray | None] | None = None) -> list[list[Face]]:
        """The faces of located frames (in the order they were located): those due for reading
        read by the classifier, all frames' in one batch (unless `readings` brings that batch's
        result, `_classify` of `_due(located)`), then each frame finished in turn."""
        probs, gender = readings if readings is not None else self._classify(self._due(located))
        faces, start = [], 0
        for loc in located:
            end = start + sum(loc.read)
            faces.append(self._finish(tracker, loc, probs[start:end], gender[start:end] if gender is not None else None))
            start = end
        return faces

    def _finish(self, tracker: Tracker, loc: LocatedFrame, probs: np.ndarray, gender: np.ndarray | None) -> list[Face]:
        """A located frame's faces, given the readings of those read in it (`probs`, `gender`): the
        others carry their track's latest reading; with the mesh, fused with the blendshapes; then
        smoothed per track."""
        if not all(loc.read):
            new = iter(zip(probs, gender if gender is not None else [None] * len(probs)))
            readings = [next(new) if r else t.reading for t, r in zip(loc.tracks, loc.read)]
            probs = np.stack([p for p, _ in readings])
            gender = np.stack([g for _, g in readings]) if self.gender else None
        if tracker.classify_every > 1:  # readings to carry
            for i, (t, r) in enumerate(zip(loc.tracks, loc.read)):
                if r:
                    t.reading = (probs[i], gender[i] if gender is not None else None)
        fused = self._with_blendshapes(probs, loc.measures)
        smooth = tracker.smooth(loc.tracks, fused)
        return [self._make_face(loc.frame, d, smooth[i], gender[i] if gender is not None else None,
                                loc.measures[i] if loc.measures else None, t.id, fused[i], r)
                for i, (d, t, r) in enumerate(zip(loc.dets, loc.tracks, loc.read))]

    def _worker(self) -> ThreadPoolExecutor:
        """One thread beside the caller's, started on first use: with the mesh on it measures
        faces with the landmarker; without it, the classifier reads a file's located frames there
        while the next ones are located."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="emoscope-worker")
        return self._thread

    def _redetect_lost(self, frame, tracker, index, dets, known, seeded, measures):
        """Faces found from their previous mesh whose new mesh lost them: re-detected in their
        window and measured again, or dropped for this frame."""
        kept = ([], [], [], [])
        for d, tid, s, m in zip(dets, known, seeded, measures):
            if s and m.presence < PRESENCE_THRESHOLD:
                d = self._redetect(frame, tracker.track(tid).predict(index))
                if d is None:
                    continue
                s, m = False, self._measure_one(frame, d)
            for part, v in zip(kept, (d, tid, s, m)):
                part.append(v)
        return kept

    @staticmethod
    def _seed_next(frame, index: int, tracks: list[Track], dets, seeded, measures) -> None:
        """Where a face's mesh found it, the detection that mesh predicts for the next frame: the
        box the detector would give (its last box relative to the mesh's extent), shifted by the
        track's motion, with the mesh's five points."""
        H, W = frame.shape[:2]
        for t, d, s, m in zip(tracks, dets, seeded, measures):
            t.mesh_frame = index
            if m.presence < PRESENCE_THRESHOLD:
                t.mesh_seed = None
                continue
            cx, cy, side = extent(m.mesh)
            if not s:
                x, y, w, h = d.box
                t.box_in_mesh = ((x + w / 2 - cx) / side, (y + h / 2 - cy) / side, w / side, h / side)
            dx, dy, rw, rh = t.box_in_mesh
            vx, vy = t.velocity
            w, h = rw * side, rh * side
            box = (cx + dx * side - w / 2 + vx, cy + dy * side - h / 2 + vy, w, h)
            t.mesh_seed = Detection(clip_box(box, W, H), d.score, five_points(m.mesh) + np.float32([vx, vy]))

    @staticmethod
    def thumbnail(frame: np.ndarray, box) -> np.ndarray:
        """A small colour picture of a face (its box with a margin), for per-person summaries."""
        rgb = crop_face(frame, box, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), "rgb", CropRule(margin=0.15))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    def iter_video(self, source, every: int = 1, tracker: Tracker | None = None, max_frames: int | None = None,
                   progress: bool = True, live: bool = False) -> Iterator[tuple[int, float, np.ndarray, list[Face]]]:
        """Yield (frame index, time s, frame, faces) for every `every`-th frame of a file, URL,
        camera index or open `VideoReader` (which then brings its own `every` and `max_frames`).
        Faces carry stable `track_id`s; their probabilities are temporally smoothed. A truncated
        file warns and yields what could be read. `live`: each frame is yielded as soon as it is
        analysed (a window on a file or stream; cameras always are), not `frames_per_read` at a time."""
        video = source if isinstance(source, VideoReader) else VideoReader(source, every, max_frames)
        tracker = tracker or self.new_tracker(video.fps, video.every)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=video.frame_count or None, desc=os.path.basename(str(video.source)), unit="frame",
                       file=sys.stderr, disable=None, leave=False)
        try:
            # the tracker counts analysed frames (its gaps, velocities and detection schedule are
            # in those), whatever `every` skips between them; a file's next frame is taken one
            # step early, for measuring its meshes ahead, and its frames are read several at a
            # time (`frames_per_read`; a camera's are not: that would add latency), each group read
            # by the classifier on the worker thread while the next group is located
            frames = iter(video)
            item, step, located, reading = next(frames, None), 0, [], None
            per_read = 1 if live or self.landmarker is not None or item is None else frames_per_read(item[1])

            def finish(group, readings=None):
                faces = self._read_frames(tracker, [loc for _, loc in group], readings)
                for (i, loc), fs in zip(group, faces):
                    yield i, i / video.fps, loc.frame, fs
                if bar is not None:
                    bar.update(video.frames_read - bar.n)

            while item is not None:
                following = None if video.is_camera else next(frames, None)
                index, frame = item
                located.append((index, self._locate(frame, tracker, step, None,
                                                    None if following is None else following[1])))
                if per_read == 1:
                    yield from finish(located)
                    located = []
                elif len(located) == per_read or following is None:
                    ahead = located, self._worker().submit(self._classify, self._due([loc for _, loc in located]))
                    if reading is not None:
                        yield from finish(reading[0], reading[1].result())
                    reading, located = ahead, []
                item, step = next(frames, None) if video.is_camera else following, step + 1
            if reading is not None:
                yield from finish(reading[0], reading[1].result())
        finally:
            tracker.meshing_ahead = None  # a frame measured ahead that will not come
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
