"""The result type of the analyzer: one detected face with its expression and valence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np


@dataclass
class Face:
    box: tuple[int, int, int, int]              # x, y, w, h in pixels of the input image
    label: str                                  # most probable expression
    probs: dict[str, float]                     # calibrated probabilities, sum to 1
    score: float                                # detector confidence
    valence: str                                # positive / negative / neutral
    valence_score: float                        # expected valence in [-1, 1]
    landmarks: list[list[float]] | None = None  # 5 points (eyes, nose, mouth corners) when the detector gives them
    track_id: int | None = None                 # stable per-person id in videos
    gender: dict[str, float] | None = field(default=None)  # only when asked for
    raw_probs: dict[str, float] | None = None   # videos: this frame's own probabilities (`probs` are smoothed)
    classified: bool | None = None              # videos: the classifier read this frame's face (False: `raw_probs`
                                                # are its track's last reading, carried: `Analyzer(classify_every=)`)
    # with `Analyzer(mesh=True)` (conventions in `emoscope.mesh`):
    mesh: np.ndarray | None = None              # (478, 3): x, y in pixels, relative z
    blendshapes: dict[str, float] | None = None  # MediaPipe's 52 coefficients, 0..1
    head_pose: dict[str, float] | None = None   # yaw, pitch, roll in degrees
    gaze: dict[str, float] | None = None        # yaw, pitch in degrees (head pose plus the eyes' turn)
    eyes_open: bool | None = None
    attention: bool | None = None               # facing the camera within the attention cone, eyes open
    action_units: dict[str, float] | None = None  # approximate AUs read from the blendshapes
    mesh_presence: float | None = None          # the landmarker's confidence that the mesh is on a face, 0..1
    expression_from: str | None = None          # "image", or "image+blendshapes" where the model's blendshape
                                                # expert read the expression together with the image
    # the fit flag (emoscope.analyze.quality): can this face be read at all?
    quality: float | None = None                # 0..1; 0.5 at the nearest limit
    readable: bool | None = None                # False: keep the probabilities, never count the expression
    unreadable: str | None = None               # why not, in plain words ("head turned sideways; too dark")

    @property
    def confidence(self) -> float:
        return self.probs[self.label]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(d["box"])
        if self.mesh is not None:
            d["mesh"] = np.round(self.mesh.astype(np.float64), 2).tolist()
        return {k: v for k, v in d.items() if v is not None}

    def scaled(self, factor: float) -> "Face":
        """The same face with its box and landmarks in an image `factor` times larger (e.g. back
        to the original pixels of an image that was analysed downscaled)."""
        if factor == 1:
            return self
        box = tuple(int(round(v * factor)) for v in self.box)
        lms = [[round(x * factor, 1), round(y * factor, 1)] for x, y in self.landmarks] if self.landmarks else None
        mesh = self.mesh * np.float32(factor) if self.mesh is not None else None
        return replace(self, box=box, landmarks=lms, mesh=mesh)
