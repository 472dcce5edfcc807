"""The per-frame research table of a video, in the manner of OpenFace's CSV: one row per face per
analysed frame, and one row with `success` 0 for each analysed frame in which no face was found.

Columns: frame, timestamp (s), face_id (the person's track), confidence (the detector's score),
success, the box (x, y, w, h), quality, readable and unreadable (the fit flag and its reason:
`emoscope.analyze.quality`), label, the smoothed probabilities (one column per class), the
frame's own probabilities (raw_<class>), classified (whether the classifier read the face in this
frame, or raw_<class> are its track's last reading: `Analyzer(classify_every=)`), valence,
valence_score, the five detector landmarks (lm0_x ... lm4_y: the eyes, the nose tip, the mouth
corners), and with the face mesh:
mesh_presence, expression_from, yaw, pitch, roll, gaze_yaw, gaze_pitch, eyes_open, attention, the 52 blendshapes, the approximate action
units (AU01 ...) and the 478 mesh points (x_0 ... x_477, y_0 ..., z_0 ...)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .face import Face
from .timeline import fit_columns, measures

DETECTOR_POINTS = 5


def face_row(frame: int, time: float, face: Face) -> dict:
    x, y, w, h = face.box
    row = {"frame": frame, "timestamp": round(time, 4), "face_id": face.track_id, "confidence": face.score,
           "success": 1, "x": x, "y": y, "w": w, "h": h, "label": face.label, **face.probs,
           **{f"raw_{c}": v for c, v in (face.raw_probs or {}).items()}, "classified": face.classified,
           "valence": face.valence, "valence_score": face.valence_score, **fit_columns(face)}
    for i, (px, py) in enumerate(face.landmarks or []):
        row[f"lm{i}_x"], row[f"lm{i}_y"] = px, py
    row.update(measures(face))
    if face.mesh is not None:
        for axis, values in zip("xyz", np.round(face.mesh.T.astype(np.float64), 2)):
            row.update({f"{axis}_{i}": v for i, v in enumerate(values)})
    return row


def frame_table(records: list[tuple[int, float, list[Face]]], columns: list[str] | None = None) -> pd.DataFrame:
    """The table of (frame index, time s, faces) records, in frame order (with `columns`, exactly
    those columns, typed the same in every part: `FrameTableWriter`)."""
    rows = []
    for frame, time, faces in records:
        if faces:
            rows.extend(face_row(frame, time, f) for f in faces)
        else:
            rows.append({"frame": frame, "timestamp": round(time, 4), "face_id": None, "confidence": 0.0,
                         "success": 0})
    df = pd.DataFrame(rows, columns=columns)
    if len(df):
        df["face_id"] = df["face_id"].astype("Int64")
        df["success"] = df["success"].astype(int)
    if columns is not None:
        df = df.astype({c: column_type(c) for c in columns})
    return df


BOOL_COLUMNS = ("classified", "readable", "eyes_open", "attention")
TEXT_COLUMNS = ("unreadable", "label", "valence", "expression_from")
INT_COLUMNS = ("frame", "face_id", "success", "x", "y", "w", "h")


def column_type(name: str) -> str:
    return ("boolean" if name in BOOL_COLUMNS else "string" if name in TEXT_COLUMNS
            else "Int64" if name in INT_COLUMNS else "float64")


def frame_columns(classes: list[str], mesh: bool) -> list[str]:
    """Every column of the research table, in order, for a model's classes (with or without the mesh)."""
    from ..mesh import ACTION_UNITS, BLENDSHAPES, N_LANDMARKS
    cols = ["frame", "timestamp", "face_id", "confidence", "success", "x", "y", "w", "h", "label", *classes,
            *[f"raw_{c}" for c in classes], "classified", "valence", "valence_score", "quality", "readable",
            "unreadable", *[f"lm{i}_{a}" for i in range(DETECTOR_POINTS) for a in "xy"]]
    if mesh:
        cols += ["mesh_presence", "expression_from", "yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch", "eyes_open",
                 "attention", *BLENDSHAPES, *ACTION_UNITS,
                 *[f"{a}_{i}" for a in "xyz" for i in range(N_LANDMARKS)]]
    return cols


class FrameTableWriter:
    """The research table written to STEM.frames.csv (and STEM.frames.parquet with pyarrow) in parts
    of `part_frames` analysed frames, so memory stays flat however long the video (with the mesh a
    row is about 1,500 values). `add` each analysed frame; `close` writes the last part."""

    def __init__(self, stem: str, classes: list[str], mesh: bool, part_frames: int = 100):
        self.csv_path, self.parquet_path = stem + ".frames.csv", stem + ".frames.parquet"
        self.columns = frame_columns(classes, mesh)
        self.part_frames = part_frames
        self.records: list = []
        self.frames = self.rows = self.without_face = 0
        self.parquet = None
        try:
            import pyarrow  # noqa: F401
            self.has_parquet = True
        except ImportError:
            self.has_parquet = False
        for path in (self.csv_path, self.parquet_path):
            if os.path.exists(path):
                os.remove(path)

    def add(self, frame: int, time: float, faces: list[Face]) -> None:
        self.records.append((frame, time, faces))
        if len(self.records) >= self.part_frames:
            self.flush()

    def flush(self) -> None:
        if not self.records:
            return
        part = frame_table(self.records, self.columns)
        self.records = []
        self.frames += int(part["frame"].nunique())
        self.rows += len(part)
        self.without_face += int((part["success"] == 0).sum())
        part.to_csv(self.csv_path, mode="a", header=not os.path.exists(self.csv_path), index=False)
        if self.has_parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(part, preserve_index=False)
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.parquet_path, table.schema)
            self.parquet.write_table(table.cast(self.parquet.schema))

    def close(self) -> None:
        self.flush()
        if self.parquet is not None:
            self.parquet.close()
        elif not os.path.exists(self.csv_path):  # a video with no analysed frame: the header alone
            pd.DataFrame(columns=self.columns).to_csv(self.csv_path, index=False)
