"""Multi-face tracking across frames: greedy IoU matching with a centroid fallback, tolerant of
short gaps (missed detections), plus exponential smoothing of each track's probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: tuple
    last_frame: int
    smoothed: np.ndarray | None = None
    hits: int = 0
    history: list = field(default_factory=list)


class Tracker:
    """Assign stable ids to face boxes frame by frame.

    A detection joins the live track with the highest IoU above `iou_threshold`, or failing that the
    nearest track whose centre is within `max_center_shift` box sizes; tracks unseen for more than
    `max_gap` frames end. `alpha` is the weight of the newest frame in the smoothed probabilities.
    """

    def __init__(self, iou_threshold: float = 0.3, max_center_shift: float = 0.6, max_gap: int = 15,
                 alpha: float = 0.4):
        self.iou_threshold = iou_threshold
        self.max_center_shift = max_center_shift
        self.max_gap = max_gap
        self.alpha = alpha
        self.tracks: list[Track] = []
        self.next_id = 1

    def _score(self, track: Track, box) -> float:
        o = iou(track.box, box)
        if o >= self.iou_threshold:
            return 1.0 + o
        tx, ty, tw, th = track.box
        x, y, w, h = box
        dist = np.hypot((tx + tw / 2) - (x + w / 2), (ty + th / 2) - (y + h / 2)) / max(tw, th, 1e-6)
        return 1.0 - dist / self.max_center_shift if dist < self.max_center_shift else 0.0

    def update(self, frame: int, boxes: list, probs: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Match this frame's boxes; returns their track ids and smoothed probabilities."""
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_gap]
        pairs = sorted(((self._score(t, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for score, ti, bi in pairs:
            if score <= 0 or ti in used_tracks or bi in assigned:
                continue
            assigned[bi] = self.tracks[ti]
            used_tracks.add(ti)
        ids, smoothed = [], np.zeros_like(probs)
        for bi, box in enumerate(boxes):
            t = assigned.get(bi)
            if t is None:
                t = Track(self.next_id, box, frame)
                self.next_id += 1
                self.tracks.append(t)
            t.box, t.last_frame, t.hits = box, frame, t.hits + 1
            p = probs[bi]
            t.smoothed = p.copy() if t.smoothed is None else self.alpha * p + (1 - self.alpha) * t.smoothed
            ids.append(t.id)
            smoothed[bi] = t.smoothed
        return ids, smoothed
