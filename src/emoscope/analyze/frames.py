"""The per-frame research table of a video, in the manner of OpenFace's CSV: one row per face per
analysed frame, and one row with `success` 0 for each analysed frame in which no face was found.

Columns: frame, timestamp (s), face_id (the person's track), confidence (the detector's score),
success, the box (x, y, w, h), quality, readable and unreadable (the fit flag and its reason:
`emoscope.analyze.quality`), label, the smoothed probabilities (one column per class), the
frame's own probabilities (raw_<class>), valence, valence_score, the five detector landmarks
(lm0_x ... lm4_y: the eyes, the nose tip, the mouth corners), and with the face mesh:
mesh_presence, expression_from, yaw, pitch, roll, gaze_yaw, gaze_pitch, eyes_open, attention, the 52 blendshapes, the approximate action
units (AU01 ...) and the 478 mesh points (x_0 ... x_477, y_0 ..., z_0 ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .face import Face
from .timeline import fit_columns, measures

DETECTOR_POINTS = 5


def face_row(frame: int, time: float, face: Face) -> dict:
    x, y, w, h = face.box
    row = {"frame": frame, "timestamp": round(time, 4), "face_id": face.track_id, "confidence": face.score,
           "success": 1, "x": x, "y": y, "w": w, "h": h, "label": face.label, **face.probs,
           **{f"raw_{c}": v for c, v in (face.raw_probs or {}).items()},
           "valence": face.valence, "valence_score": face.valence_score, **fit_columns(face)}
    for i, (px, py) in enumerate(face.landmarks or []):
        row[f"lm{i}_x"], row[f"lm{i}_y"] = px, py
    row.update(measures(face))
    if face.mesh is not None:
        for axis, values in zip("xyz", np.round(face.mesh.T.astype(np.float64), 2)):
            row.update({f"{axis}_{i}": v for i, v in enumerate(values)})
    return row


def frame_table(records: list[tuple[int, float, list[Face]]]) -> pd.DataFrame:
    """The table of (frame index, time s, faces) records, in frame order."""
    rows = []
    for frame, time, faces in records:
        if faces:
            rows.extend(face_row(frame, time, f) for f in faces)
        else:
            rows.append({"frame": frame, "timestamp": round(time, 4), "face_id": None, "confidence": 0.0,
                         "success": 0})
    df = pd.DataFrame(rows)
    if len(df):
        df["face_id"] = df["face_id"].astype("Int64")
        df["success"] = df["success"].astype(int)
    return df
