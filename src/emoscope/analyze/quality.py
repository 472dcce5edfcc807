"""The fit flag: whether a face can be read at all, before anyone believes its expression.

Every face gets `quality` (0..1) and `readable`, and the reasons when it is not readable: the head
turned past a limit (yaw / pitch from the face mesh when it is measured, else estimated from the
detector's five landmarks), too small, too dark or too flat in contrast, blurred, a low detector
score, or a mesh that found no face. OpenFace's `success` / `confidence` and FaceReader's fit
quality are the models. Each measure maps to a score in [0, 1] that is 0.5 exactly at its limit
and 1 at its "good" value; `quality` is the lowest of them, so `readable` is `quality >= 0.5`.
Unreadable faces keep their probabilities (research table, API) but summaries, curves, campaign
statistics, pages and annotated output count them apart, never as an expression.

The limits were chosen from measured curves (experiments/fit_flag.py: web_faces val photos read end
to end, clean and degraded on purpose; results in experiments/results/fit-flag/, summary in
docs/model-card.md, "The fit flag"): each limit sits where the faces it rejects are read right
about half the time or less, against 85% for clean photos. NumPy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# (limit, good): a measure at its limit scores 0.5, at `good` (or beyond) 1.0, and falls to 0
# as far past the limit on the other side.
LIMITS = {
    "yaw": (45.0, 15.0),        # degrees either way: |yaw| above the limit is unreadable (the mesh's)
    "pitch": (35.0, 10.0),      # degrees either way
    "size": (20.0, 40.0),       # the face box's shorter side in pixels
    "brightness": (20.0, 80.0),  # mean gray level of the face (0..255)
    "contrast": (10.0, 30.0),   # standard deviation of the face's gray levels
    "sharpness": (15.0, 100.0),  # variance of the Laplacian of the face at QUALITY_SIDE pixels
    "score": (0.65, 0.85),      # detector confidence
    "presence": (0.5, 0.9),     # the face mesh's confidence that it is on a face
}
REASONS = {
    "yaw": "head turned sideways", "pitch": "head tilted up or down", "size": "face too small",
    "brightness": "too dark", "contrast": "too little contrast", "sharpness": "blurred",
    "score": "unsure detection", "presence": "mesh found no face",
}
QUALITY_SIDE = 64  # the face is resized to this side before its light and sharpness are measured
# Yaw and pitch from five landmarks (right eye, left eye, nose tip, mouth corners) and the box.
# Yaw is the mean of two readings: the nose tip's offset from the eyes' midpoint, in eye distances,
# read as the sine of the turn, and the eyes' distance in box widths against a frontal face's, read
# as its cosine. The nose reading alone saturates in near profiles, where the detector's points
# slide (on the sample clip a man in near profile read 30-38 degrees); the eye span keeps falling.
# Fitted against the face mesh's yaw on 7,905 faces of web_faces (train and val parts) and
# gender_faces, each also mirrored (experiments/yaw_from_landmarks.py): the offset at 90 degrees
# that gives the lowest mean error over bands of true yaw (0.74), and the median eye span of faces
# the mesh puts within 15 degrees (0.476). Mean error by band 0-15 / 15-30 / 30-45 / 45-60 / 60-90
# degrees: nose alone -1.3 / -6.9 / -8.7 / -2.4 / +2.0 (mean absolute error over the bands 10.6),
# both -0.4 / -8.2 / -9.1 / -5.2 / -4.3 (8.9). Both read turned faces low, so their limit is lower
# than the mesh's 45 degrees: 41 is where their flag agrees best with the mesh's (F1 0.67: 68% of
# the 72 faces the mesh puts past 45 degrees flagged, 0.3% of the others; at 45 degrees 53%; the
# nose alone at its best limit, 39 degrees: F1 0.63). Pitch: fitted on the sample clip (108 faces;
# r = 0.46, mean error 5.9 degrees), so pitch from landmarks is a rough guide.
NOSE_OFFSET_AT_90 = 0.74
EYES_IN_BOX_FRONTAL = 0.476
LANDMARK_YAW_LIMIT = 41.0
PITCH_SLOPE, PITCH_LEVEL = -74.0, 0.5  # degrees per unit of (nose drop / mouth drop) away from level


@dataclass(frozen=True)
class Fit:
    quality: float
    readable: bool
    reasons: tuple[str, ...]    # plain words, empty when readable
    measures: dict[str, float]  # what was measured, by LIMITS key

    @property
    def reason(self) -> str | None:
        return "; ".join(self.reasons) or None


def yaw_from_offset(offset, at_90: float = NOSE_OFFSET_AT_90):
    """Yaw in degrees from the nose tip's horizontal offset from the eyes' midpoint, in eye
    distances (a number or an array)."""
    return np.degrees(np.arcsin(np.clip(np.asarray(offset, np.float64) / at_90, -1, 1)))


def yaw_from_points(offset, eyes_in_box=None, frontal: float = EYES_IN_BOX_FRONTAL):
    """Yaw in degrees from the nose offset (as `yaw_from_offset`) and, where given, the eyes'
    distance in box widths: the mean of the two readings' sizes, with the nose's side."""
    nose = yaw_from_offset(offset)
    if eyes_in_box is None:
        return nose
    span = np.degrees(np.arccos(np.clip(np.asarray(eyes_in_box, np.float64) / frontal, 0, 1)))
    return np.where(nose < 0, -1, 1) * (np.abs(nose) + span) / 2


def pose_from_landmarks(landmarks, box_width: float | None = None) -> tuple[float, float] | None:
    """(yaw, pitch) in degrees, with the face mesh's signs, from YuNet's five points (and the
    width of its box, for the eye-span reading), or None."""
    if landmarks is None:
        return None
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if len(pts) < 5:
        return None
    right_eye, left_eye, nose, mouth_r, mouth_l = pts[:5]
    eyes = (right_eye + left_eye) / 2
    span = np.linalg.norm(left_eye - right_eye)
    drop = (mouth_r[1] + mouth_l[1]) / 2 - eyes[1]
    if span < 1e-3 or drop < 1e-3:
        return None
    yaw = float(yaw_from_points((nose[0] - eyes[0]) / span, span / box_width if box_width else None))
    pitch = PITCH_SLOPE * ((nose[1] - eyes[1]) / drop - PITCH_LEVEL)
    return yaw, float(pitch)


def image_measures(image: np.ndarray, box) -> dict[str, float]:
    """Size, brightness, contrast and sharpness of the face at `box` (x, y, w, h) in a BGR or gray image."""
    x, y, w, h = (int(round(v)) for v in box)
    H, W = image.shape[:2]
    patch = image[max(0, y):min(H, y + h), max(0, x):min(W, x + w)]
    if patch.size == 0:
        return {"size": float(min(w, h)), "brightness": 0.0, "contrast": 0.0, "sharpness": 0.0}
    gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    small = cv2.resize(gray, (QUALITY_SIDE, QUALITY_SIDE), interpolation=cv2.INTER_AREA)
    mean, std = cv2.meanStdDev(small)
    _, sharp = cv2.meanStdDev(cv2.Laplacian(small, cv2.CV_32F))
    return {"size": float(min(w, h)), "brightness": float(mean[0, 0]), "contrast": float(std[0, 0]),
            "sharpness": float(sharp[0, 0]) ** 2}


def _score(key: str, value: float, limits: dict = LIMITS) -> float:
    limit, good = limits[key]
    if key in ("yaw", "pitch"):
        value = abs(value)
    return min(1.0, max(0.0, 0.5 + 0.5 * (value - limit) / (good - limit)))


def assess(image: np.ndarray, box, landmarks=None, score: float | None = None,
           head_pose: dict | None = None, presence: float | None = None) -> Fit:
    """The fit flag of one face: its measures, `quality` (the lowest score) and the reasons."""
    m = image_measures(image, box)
    limits = LIMITS
    if head_pose:
        m["yaw"], m["pitch"] = float(head_pose["yaw"]), float(head_pose["pitch"])
    else:
        pose = pose_from_landmarks(landmarks, box[2])
        if pose is not None:
            m["yaw"], m["pitch"] = pose
            limits = {**LIMITS, "yaw": (LANDMARK_YAW_LIMIT, LIMITS["yaw"][1])}
    if score is not None:
        m["score"] = float(score)
    if presence is not None:
        m["presence"] = float(presence)
    scores = {k: _score(k, v, limits) for k, v in m.items()}
    quality = min(scores.values())
    reasons = tuple(REASONS[k] for k in LIMITS if k in scores and scores[k] < 0.5)
    return Fit(round(quality, 3), not reasons, reasons, {k: round(v, 2) for k, v in m.items()})
