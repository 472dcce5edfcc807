"""`SourceWorker`: analyses units of work (a few photos, or one whole video so that tracking stays
correct) with one `Analyzer` per process or Ray actor, built once when the worker starts."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import warnings

import cv2
import numpy as np
import pandas as pd

from ..analyze.analyzer import Analyzer, to_bgr
from ..analyze.inputs import is_video
from ..analyze.timeline import Timeline
from ..analyze.video import VideoReader
from ..memory import peak_rss_mb

# One row per source; face_rows and person_rows are JSON lists, decoded by the writer.
RESULT_COLUMNS = ["source", "kind", "status", "reason", "faces", "frames", "duration_s", "seconds", "worker",
                  "worker_rss_mb", "face_rows", "person_rows"]


def plain(value):
    """JSON for the numpy scalars that pandas rows carry."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def face_row(source: str, kind: str, row: dict) -> dict:
    """A timeline row as a batch row: the source first, `time_s` for time, track -1 on photos."""
    row = dict(row)
    row["time_s"] = row.pop("time")
    row["track"] = -1 if row["track"] is None else int(row["track"])
    row.setdefault("short_track", False)
    return {"source": source, "kind": kind, **row}


def failure_reason(exc: Exception) -> str:
    """Why a source failed, in plain words (no exception class names, no library output)."""
    if isinstance(exc, FileNotFoundError):
        return "the file no longer exists"
    if isinstance(exc, PermissionError):
        return "no permission to read the file"
    if isinstance(exc, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(exc, OSError):
        return f"the file cannot be read ({exc.strerror or 'input/output error'})"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"the file could not be analysed ({exc})"


class SourceWorker:
    """Callable over a pandas batch with a `unit` column (JSON lists of source paths); returns one
    row per source (`RESULT_COLUMNS`). The same class runs in the local process pool and as the
    Ray Data actor, so both engines produce the same rows."""

    def __init__(self, analyzer_options: dict, every: int = 1):
        cv2.setNumThreads(max(1, analyzer_options.get("threads") or 1))  # a worker is its share of the cores
        self.analyzer = Analyzer(**analyzer_options)
        self.every = every
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = [self.analyze_source(src) for unit in batch["unit"] for src in json.loads(unit)]
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)

    def analyze_source(self, source: str) -> dict:
        """One source analysed; any error is recorded as `failed` with its reason, never raised."""
        t0 = time.perf_counter()
        kind = "video" if is_video(source) else "image"
        try:
            faces, persons, frames, duration = self._video(source) if kind == "video" else self._image(source)
            status, reason = "done", ""
        except Exception as exc:  # one bad source out of millions must not stop the job: recorded, skipped
            faces, persons, frames, duration = [], [], 0, 0.0
            status, reason = "failed", failure_reason(exc)
        return {"source": source, "kind": kind, "status": status, "reason": reason, "faces": len(faces),
                "frames": frames, "duration_s": duration, "seconds": round(time.perf_counter() - t0, 4),
                "worker": self.worker, "worker_rss_mb": peak_rss_mb(),
                "face_rows": json.dumps(faces, default=plain), "person_rows": json.dumps(persons, default=plain)}

    def _image(self, source: str):
        faces = self.analyzer.analyze(to_bgr(source))
        return [face_row(source, "image", Timeline.row(0, 0.0, f)) for f in faces], [], 1, 0.0

    def _video(self, source: str):
        return video_rows(self.analyzer, source, self.every)


def video_rows(analyzer: Analyzer, source: str, every: int = 1, name: str | None = None, on_frame=None,
               max_frames: int | None = None):
    """One video analysed into batch rows: (face rows, person rows, frames read, duration s). `name`
    is the source as the rows record it (default: its path). A truncated file raises ValueError."""
    name = name or source
    video = VideoReader(source, every, max_frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # truncation is checked below and recorded
        tl = analyzer.analyze_video(video, progress=False, on_frame=on_frame)
    if video.truncated:
        raise ValueError(f"truncated or damaged: {video.frames_read} of {video.frame_count} frames could be read")
    faces = [face_row(name, "video", r) for r in tl.to_dict("records")]
    persons = []
    for p in tl.summary().to_dict("records"):
        thumb = p.pop("thumbnail", None)
        png = cv2.imencode(".png", thumb)[1].tobytes() if thumb is not None else None
        persons.append({"source": name, **p, "thumbnail_png": base64.b64encode(png).decode() if png else None})
    duration = (video.frame_count or video.frames_read) / video.fps
    return faces, persons, video.frames_read, round(duration, 3)
