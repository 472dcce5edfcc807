"""The face-mesh contract, in one place: how a detected face becomes the landmark model's input,
what its outputs mean, which landmarks feed the blendshape model, the blendshape names, and the
measures derived from them (head pose, gaze, eyes open, attention, approximate action units).
The models are MediaPipe's Face Landmarker (Apache-2.0), run by `emoscope.runtime.landmarker`.
NumPy and OpenCV only.

Conventions (image axes: x to the right, y down; "left"/"right" are the person's own):
- `mesh`: 478 x 3, x and y in image pixels, z relative depth in the same pixel units (smaller is
  nearer the camera; the face's centre is near 0).
- `head_pose`: degrees. yaw > 0 when the nose points to the image's right (the person turns to
  their left), pitch > 0 when it points up, roll > 0 when the eye line turns clockwise in the
  image. A mirror image flips the signs of yaw and roll and keeps pitch.
- `gaze`: where the eyes point, in the same degrees and signs as yaw and pitch: the head's pose
  plus the eyes' turn in the head, which is read from where each iris sits between its eye's
  corners and lids (about +-35 degrees at the corners). Approximate: no per-person calibration.
- `attention`: the gaze is within `ATTENTION_CONE_DEG` of the camera and the eyes are open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# -- the landmark model: a square crop around the face, turned so the eyes are level -------------
LANDMARK_INPUT = 256          # side of the RGB crop, values in [0, 1]
ROI_SCALE = 1.5               # crop side = the face box's longer side times this
N_LANDMARKS = 478             # 468 mesh points, then 5 per iris (468-472 and 473-477)
PRESENCE_THRESHOLD = 0.5      # sigmoid of the model's face-presence output

# -- the blendshape model: 146 of the landmarks, x and y in image pixels -------------------------
BLENDSHAPE_LANDMARKS = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78,
    80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152,
    153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312,
    314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381,
    382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472,
    473, 474, 475, 476, 477)
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight")

# An approximate reading of FACS action units from the blendshapes (each AU the mean of the
# blendshapes listed). Blendshapes are not AUs: this is a convenience for comparison with
# OpenFace-style outputs, not a coded FACS measurement.
ACTION_UNITS = {
    "AU01": ("browInnerUp",),                                  # inner brow raiser
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),           # outer brow raiser
    "AU04": ("browDownLeft", "browDownRight"),                 # brow lowerer
    "AU05": ("eyeWideLeft", "eyeWideRight"),                   # upper lid raiser
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),           # cheek raiser
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),               # lid tightener
    "AU09": ("noseSneerLeft", "noseSneerRight"),               # nose wrinkler
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),         # upper lip raiser
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),             # lip corner puller
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),           # dimpler
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),             # lip corner depressor
    "AU17": ("mouthShrugLower",),                              # chin raiser
    "AU18": ("mouthPucker",),                                  # lip pucker
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),         # lip stretcher
    "AU22": ("mouthFunnel",),                                  # lip funneler
    "AU23": ("mouthPressLeft", "mouthPressRight"),             # lip tightener
    "AU25": ("mouthLowerDownLeft", "mouthLowerDownRight"),     # lips part
    "AU26": ("jawOpen",),                                      # jaw drop
    "AU28": ("mouthRollLower", "mouthRollUpper"),              # lip suck
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),                 # blink
}

# -- landmarks the derived measures use (MediaPipe's canonical mesh numbering) ------------------
# The person's right eye appears on the image's left.
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": 159, "lower": 145, "iris": 468}
LEFT_EYE = {"outer": 263, "inner": 362, "upper": 386, "lower": 374, "iris": 473}
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
EYE_TURN_DEG = 35.0          # the eyes' turn when the iris reaches a corner (approximate)
ATTENTION_CONE_DEG = 20.0    # attention: gaze yaw and pitch both within this of the camera
EYES_OPEN_BELOW = 0.5        # eyes open: the mean eyeBlink blendshape is below this


def roi_matrix(box, eyes: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The 2x3 affine matrix taking image pixels into the landmark model's crop, and the crop's
    side in image pixels: a square of ROI_SCALE times the box's longer side around its centre,
    turned so that the eyes (`eyes`: right eye then left eye, as YuNet gives them) are level."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    side = max(w, h) * ROI_SCALE
    angle = 0.0
    if eyes is not None:
        (rx, ry), (lx, ly) = eyes[0], eyes[1]
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
    m = cv2.getRotationMatrix2D((cx, cy), angle, LANDMARK_INPUT / side)
    m[0, 2] += LANDMARK_INPUT / 2 - cx
    m[1, 2] += LANDMARK_INPUT / 2 - cy
    return m, side


def five_points(mesh: np.ndarray) -> np.ndarray:
    """YuNet's five points read from a mesh (5 x 2: right eye, left eye, nose tip, mouth right,
    mouth left; each eye the midpoint of its corners), so a face tracked by its mesh is aligned
    and assessed like a detected one."""
    eye = [(mesh[e["outer"], :2] + mesh[e["inner"], :2]) / 2 for e in (RIGHT_EYE, LEFT_EYE)]
    return np.array([*eye, mesh[NOSE_TIP, :2], mesh[MOUTH_RIGHT, :2], mesh[MOUTH_LEFT, :2]], np.float32)


def extent(mesh: np.ndarray) -> tuple[float, float, float]:
    """The centre (x, y) and longer side of the bounding box of the 468 mesh points, in pixels."""
    lo, hi = mesh[:468, :2].min(axis=0), mesh[:468, :2].max(axis=0)
    return float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, float(max(hi - lo))


def to_image(points: np.ndarray, m: np.ndarray, side: float) -> np.ndarray:
    """Landmarks (N, 3) in crop pixels back to image pixels; z scaled like x and y."""
    inv = cv2.invertAffineTransform(m)
    xy = points[:, :2] @ inv[:, :2].T + inv[:, 2]
    return np.column_stack([xy, points[:, 2] * side / LANDMARK_INPUT]).astype(np.float32)


def head_pose(mesh: np.ndarray) -> dict[str, float]:
    """Yaw, pitch and roll in degrees (module docstring) from the mesh's own 3-D frame: x from the
    person's right eye corner to their left, y from chin to forehead, z out of the face."""
    ex = mesh[LEFT_EYE["outer"]] - mesh[RIGHT_EYE["outer"]]
    up = mesh[FOREHEAD] - mesh[CHIN]
    ex = ex / (np.linalg.norm(ex) + 1e-9)
    up = up - ex * float(up @ ex)
    up = up / (np.linalg.norm(up) + 1e-9)
    forward = np.cross(ex, up)  # image axes are left-handed for a viewer: this points at the camera
    forward = forward / (np.linalg.norm(forward) + 1e-9)
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(ex[1], ex[0]))
    return {"yaw": yaw, "pitch": pitch, "roll": roll}


def eye_turn(mesh: np.ndarray) -> tuple[float, float]:
    """The eyes' turn in the head (yaw, pitch in degrees), averaged over both eyes: where each iris
    sits along the line between its corners (+-1 at a corner) and across it from the middle of
    its lids (in half eye widths; the eye's opening is about a third of its width, hence the
    doubled scale)."""
    yaws, pitches = [], []
    for eye, (left, right) in ((RIGHT_EYE, ("outer", "inner")), (LEFT_EYE, ("inner", "outer"))):
        a, b = mesh[eye[left], :2], mesh[eye[right], :2]  # the corners on the image's left and right
        half = float(np.linalg.norm(b - a)) / 2 + 1e-9
        axis = (b - a) / (2 * half)
        down = np.array([-axis[1], axis[0]])
        iris = mesh[eye["iris"], :2]
        yaws.append(float((iris - (a + b) / 2) @ axis) / half)
        lids = (mesh[eye["upper"], :2] + mesh[eye["lower"], :2]) / 2
        pitches.append(-2 * float((iris - lids) @ down) / half)
    return (float(np.clip(np.mean(yaws), -1, 1)) * EYE_TURN_DEG,
            float(np.clip(np.mean(pitches), -1, 1)) * EYE_TURN_DEG)


def gaze(mesh: np.ndarray, pose: dict[str, float]) -> dict[str, float]:
    """Where the eyes point: head pose plus the eyes' turn (module docstring)."""
    yaw, pitch = eye_turn(mesh)
    return {"yaw": pose["yaw"] + yaw, "pitch": pose["pitch"] + pitch}


def eyes_open(blendshapes: dict[str, float]) -> bool:
    return (blendshapes["eyeBlinkLeft"] + blendshapes["eyeBlinkRight"]) / 2 < EYES_OPEN_BELOW


def attending(gaze_deg: dict[str, float], open_eyes: bool) -> bool:
    """Facing the camera: gaze within ATTENTION_CONE_DEG in yaw and pitch, eyes open."""
    return open_eyes and abs(gaze_deg["yaw"]) <= ATTENTION_CONE_DEG and abs(gaze_deg["pitch"]) <= ATTENTION_CONE_DEG


def action_units(blendshapes: dict[str, float]) -> dict[str, float]:
    """The approximate action units of `ACTION_UNITS`, 0..1."""
    return {au: float(np.mean([blendshapes[b] for b in names])) for au, names in ACTION_UNITS.items()}


@dataclass
class FaceMesh:
    """What the landmarker measures of one face."""

    mesh: np.ndarray                       # (478, 3) float32
    presence: float                        # 0..1
    blendshapes: dict[str, float] = field(default_factory=dict)
    head_pose: dict[str, float] = field(default_factory=dict)
    gaze: dict[str, float] = field(default_factory=dict)
    eyes_open: bool = True
    attention: bool = False

    def action_units(self) -> dict[str, float]:
        return action_units(self.blendshapes)

    def to_dict(self, with_mesh: bool = True) -> dict:
        out = {"presence": round(self.presence, 4),
               "head_pose": {k: round(v, 2) for k, v in self.head_pose.items()},
               "gaze": {k: round(v, 2) for k, v in self.gaze.items()},
               "eyes_open": self.eyes_open, "attention": self.attention,
               "blendshapes": {k: round(v, 4) for k, v in self.blendshapes.items()},
               "action_units": {k: round(v, 4) for k, v in self.action_units().items()}}
        if with_mesh:
            out["mesh"] = np.round(self.mesh, 2).tolist()
        return out
