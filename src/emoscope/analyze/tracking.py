"""Multi-face tracking across frames, and the per-video state of detect-then-track.

Each track predicts its box with constant velocity; detections join tracks by IoU with that
prediction (a centroid fallback for fast moves), a lost track is re-linked within its gap by a
small colour histogram of the face, and probabilities are smoothed per track. A scene cut ends
every track, since the people of a new shot are new tracks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..runtime.detector import Detection

MIN_TRACK_FRAMES = 8  # source frames (a quarter second at 30 FPS); shorter tracks (flickers) stay out of summaries


def min_track_frames(every: int = 1) -> int:
    """The analysed frames a track needs to count as a person when every `every`-th frame is
    analysed: MIN_TRACK_FRAMES source frames, and never a single detection."""
    return max(2, math.ceil(MIN_TRACK_FRAMES / every)) if every > 1 else MIN_TRACK_FRAMES


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def appearance(image: np.ndarray, box) -> np.ndarray:
    """A cheap appearance cue: the normalised hue-saturation histogram (8 x 4 bins) of the face."""
    x, y, w, h = (int(round(v)) for v in box)
    H, W = image.shape[:2]
    patch = image[max(0, y):min(H, y + h), max(0, x):min(W, x + w)]
    if patch.size == 0 or patch.ndim != 3:
        return np.full(32, 1 / 32, np.float32)
    step = max(1, min(patch.shape[:2]) // 24)  # about 24 x 24 samples: a histogram needs no filtering
    hsv = cv2.cvtColor(np.ascontiguousarray(patch[::step, ::step]), cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
    return (hist / max(hist.sum(), 1e-6)).astype(np.float32)


def similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Histogram intersection in [0, 1] (1: the same colours)."""
    return float(np.minimum(a, b).sum()) if a is not None and b is not None else 0.0


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """The whole frame as a 32 x 18 gray thumbnail, for the scene-cut test."""
    step = max(1, min(frame.shape[0] // 36, frame.shape[1] // 64))  # every step-th pixel: cheap on big frames
    small = cv2.resize(frame[::step, ::step], (32, 18), interpolation=cv2.INTER_AREA)
    return (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small).astype(np.float32)


@dataclass
class Track:
    id: int
    box: tuple
    last_frame: int
    velocity: tuple = (0.0, 0.0)            # centre motion in pixels per frame
    smoothed: np.ndarray | None = None
    hits: int = 0
    appearance: np.ndarray | None = None
    best_score: float = -1.0                # the frame with the surest detection gives the thumbnail
    thumbnail: np.ndarray | None = None
    # mesh tracking (the Analyzer's `seed_mesh`): the detection the mesh of frame `mesh_frame`
    # predicts for the next one, and the detector's box in units of the mesh's extent (centre
    # dx, dy, then w, h)
    mesh_seed: Detection | None = None
    mesh_frame: int = -1
    box_in_mesh: tuple | None = None
    # the face's reading by the classifier (`Tracker.classify_every`): the last frame it is read in
    # (set when the frame is matched) and the latest reading finished, its image probabilities and
    # gender (or None) (set when that frame is finished: a frame's expressions may be read after
    # the next frames are matched, `Analyzer.iter_video`)
    read_frame: int = -1
    reading: tuple | None = None

    def predict(self, frame: int) -> tuple:
        """The box expected at `frame` if the face keeps moving as it did."""
        dt = frame - self.last_frame
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)


class Tracker:
    """Assign stable ids to face boxes frame by frame, for one video or stream.

    A detection joins the live track whose predicted box it overlaps best (IoU above
    `iou_threshold`), or failing that the nearest track whose predicted centre is within
    `max_center_shift` box sizes, or a track lost for a few frames whose face looks the same
    (appearance similarity above `reid_similarity`, within `reid_shift` box sizes). Tracks unseen
    for more than `max_gap` frames end. `alpha` is the weight of the newest frame in the smoothed
    probabilities. The tracker also keeps what detect-then-track needs to know about the video:
    when the last full-frame detection ran, the previous frame's signature (scene cuts), and the
    meshes of the next frame's faces when they are being measured ahead (`Analyzer.track_frame`).
    """

    def __init__(self, iou_threshold: float = 0.3, max_center_shift: float = 0.6, max_gap: int = 15,
                 alpha: float = 0.4, reid_similarity: float = 0.7, reid_shift: float = 2.0,
                 cut_threshold: float = 20.0, detect_every: int = 1, classify_every: int = 1):
        self.iou_threshold = iou_threshold
        self.max_center_shift = max_center_shift
        self.max_gap = max_gap
        self.alpha = alpha
        self.reid_similarity = reid_similarity
        self.reid_shift = reid_shift
        self.cut_threshold = cut_threshold
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self.next_id = 1
        self.detect_every = detect_every  # analysed frames between full-frame detections
        self.classify_every = classify_every  # analysed frames between readings of a tracked face
        self.last_full: int | None = None
        self.signature: np.ndarray | None = None
        self.meshing_ahead: tuple | None = None  # (frame, mesh setting, seeds by track id, future meshes)

    # -- detect-then-track bookkeeping ------------------------------------------------------------
    def scene_cut(self, frame: np.ndarray) -> bool:
        """Whether `frame` starts a new shot: its 32 x 18 gray thumbnail differs from the previous
        frame's by more than `cut_threshold` grey levels on average (on the Hamilton sample clip
        its three cuts score 26-30, every other frame at most 13). Remembers the thumbnail."""
        sig = frame_signature(frame)
        cut = (self.signature is not None and sig.shape == self.signature.shape
               and float(np.abs(sig - self.signature).mean()) > self.cut_threshold)
        self.signature = sig
        return cut

    def live(self, frame: int, max_age: int = 2) -> list[Track]:
        """Tracks seen within the last `max_age` frames: worth re-detecting locally."""
        return [t for t in self.tracks if frame - t.last_frame <= max_age]

    def end_all(self) -> None:
        """A scene cut: the people of the new shot get new tracks."""
        self.finished.extend(self.tracks)
        self.tracks = []

    def track(self, track_id: int | None) -> Track | None:
        """The live track with this id, or None."""
        return next((t for t in self.tracks if t.id == track_id), None) if track_id is not None else None

    def all_tracks(self) -> list[Track]:
        return self.finished + self.tracks

    def due(self, track: Track, presumed: int | None, frame: int) -> bool:
        """Whether a face that joined `track` in `frame` is read by the classifier there: unless it
        was presumed to be that track before matching (`presume`, or the id it was re-detected
        for) and the track was read in one of the `classify_every` - 1 frames before."""
        return presumed != track.id or not 0 < frame - track.read_frame < self.classify_every

    # -- matching ---------------------------------------------------------------------------------
    def presume(self, frame: int, boxes: list, known: list) -> list:
        """The track each box will join, where that is sure before `update`: its `known` id, else
        the current track whose predicted box it overlaps by IoU 0.5 or more (best overlap first,
        one box a track: the pairs `update` makes first), else None."""
        presumed = list(known)
        claimed = {tid for tid in known if tid is not None}
        pairs = sorted(((iou(t.predict(frame), b), t.id, bi) for t in self.tracks
                        if frame - t.last_frame <= self.max_gap and t.id not in claimed
                        for bi, b in enumerate(boxes) if known[bi] is None), reverse=True)
        for overlap, tid, bi in pairs:
            if overlap >= 0.5 and tid not in claimed and presumed[bi] is None:
                presumed[bi] = tid
                claimed.add(tid)
        return presumed

    def _score(self, track: Track, box, frame: int, look) -> float:
        pred = track.predict(frame)
        o = iou(pred, box)
        if o >= self.iou_threshold:
            return 2.0 + o
        tx, ty, tw, th = pred
        x, y, w, h = box
        dist = np.hypot((tx + tw / 2) - (x + w / 2), (ty + th / 2) - (y + h / 2)) / max(tw, th, 1e-6)
        if dist < self.max_center_shift:
            return 1.0 + 1.0 - dist / self.max_center_shift
        sim = similarity(track.appearance, look)
        if frame - track.last_frame > 1 and sim >= self.reid_similarity and dist < self.reid_shift:
            return sim  # re-linked after a short occlusion
        return 0.0

    def assign(self, frame: int, boxes: list, looks: list | None = None, thumbnails: list | None = None,
               scores: list | None = None, known: list | None = None) -> list[Track]:
        """Match this frame's boxes to tracks (new ones where none fits); returns each box's track.
        `looks` are appearance histograms of the boxes; `thumbnails(i)` makes a small face image of
        box i (called only when box i is its track's surest detection so far) with the detector
        `scores` of the boxes; `known` the track id a box was re-detected for, or None (all
        optional). The boxes' probabilities are smoothed apart (`smooth`), in frame order."""
        looks = looks if looks is not None else [None] * len(boxes)
        ended = [t for t in self.tracks if frame - t.last_frame > self.max_gap]
        self.finished.extend(ended)
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_gap]
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        by_id = {t.id: ti for ti, t in enumerate(self.tracks)}
        for bi, tid in enumerate(known or []):
            if tid is not None and tid in by_id and by_id[tid] not in used_tracks:
                assigned[bi] = self.tracks[by_id[tid]]
                used_tracks.add(by_id[tid])
        pairs = sorted(((self._score(t, b, frame, looks[bi]), ti, bi) for ti, t in enumerate(self.tracks)
                        for bi, b in enumerate(boxes) if ti not in used_tracks and bi not in assigned), reverse=True)
        for score, ti, bi in pairs:
            if score <= 0 or ti in used_tracks or bi in assigned:
                continue
            assigned[bi] = self.tracks[ti]
            used_tracks.add(ti)
        matched = []
        for bi, box in enumerate(boxes):
            t = assigned.get(bi)
            if t is None:
                t = Track(self.next_id, box, frame)
                self.next_id += 1
                self.tracks.append(t)
            elif frame > t.last_frame:
                (ox, oy, ow, oh), (x, y, w, h) = t.box, box
                step = ((x + w / 2 - ox - ow / 2) / (frame - t.last_frame), (y + h / 2 - oy - oh / 2) / (frame - t.last_frame))
                t.velocity = tuple(0.5 * v + 0.5 * s for v, s in zip(t.velocity, step)) if t.hits > 1 else step
            t.box, t.last_frame, t.hits = box, frame, t.hits + 1
            if looks[bi] is not None:
                t.appearance = looks[bi] if t.appearance is None else 0.8 * t.appearance + 0.2 * looks[bi]
            if thumbnails is not None and scores is not None and scores[bi] > t.best_score:
                t.best_score, t.thumbnail = scores[bi], thumbnails(bi)
            matched.append(t)
        return matched

    def smooth(self, tracks: list[Track], probs: np.ndarray) -> np.ndarray:
        """The probabilities of one frame's faces (`probs`, a row each, matched to `tracks` by
        `assign`), smoothed over each track's frames so far: `alpha` of this frame's, the rest the
        track's smoothed probabilities of its previous frame."""
        smoothed = np.zeros_like(probs)
        for i, (t, p) in enumerate(zip(tracks, probs)):
            t.smoothed = p.copy() if t.smoothed is None else self.alpha * p + (1 - self.alpha) * t.smoothed
            smoothed[i] = t.smoothed
        return smoothed

    def thumbnails(self) -> dict[int, np.ndarray]:
        """Each person's face from the frame where it was detected most surely (BGR), by track id."""
        return {t.id: t.thumbnail for t in self.all_tracks() if t.thumbnail is not None}
