"""Segments: one coder's labels over time, as rows of (person, start_s, end_s, label).

emoscope's own segments come from the per-frame research table (`NAME.frames.csv`): runs of the
same smoothed label per person, unreadable faces (the fit flag) as their own value. Human codings
come from ELAN (`.eaf`, one tier), BORIS (tabular or aggregated events) or a plain CSV
(`start_s,end_s,label` segments, or `time_s,label` points that hold until the next point), their
labels mapped onto emoscope's vocabulary by the aliases emoscope knows (joy -> happy, ...) and an
optional label map for any other (FACS codes, a lab's own names, or valence only)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pandas as pd

from ..labels import VALENCE_LABELS, canonical_label

UNREADABLE = "unreadable"
SEGMENT_COLUMNS = ["person", "start_s", "end_s", "label"]
# what codings and agreement read of the frame table
CODING_COLUMNS = ("frame", "timestamp", "face_id", "success", "w", "h", "label", "valence", "readable", "quality")


class CodingError(ValueError):
    """A coding or frame table that cannot be read, in plain words."""


def read_frames(path: str) -> pd.DataFrame:
    """The per-frame research table written by `emoscope analyze VIDEO` (NAME.frames.csv or .parquet)."""
    if not os.path.exists(path):
        raise CodingError(f"{path} not found (emoscope analyze VIDEO writes NAME.frames.csv)")
    try:
        df = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise CodingError(f"{path} cannot be read as a table ({exc})") from None
    need = {"frame", "timestamp", "face_id", "success"}
    if not need <= set(df.columns):
        raise CodingError(f"{path} is not an emoscope frame table: it lacks {', '.join(sorted(need - set(df.columns)))}")
    return df


def frame_step(frames: pd.DataFrame) -> float:
    """Seconds between analysed frames (the median step of the table's timestamps)."""
    times = np.unique(frames["timestamp"].to_numpy(float))
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def frame_labels(frames: pd.DataFrame, column: str = "label") -> pd.DataFrame:
    """Per face row: person (str), timestamp, label (`column`, or 'unreadable' where the fit flag
    says so), quality."""
    faces = frames[frames["success"] == 1]
    label = faces[column].astype(str)
    if "readable" in faces:
        label = label.where(faces["readable"].astype(str).str.lower().isin(("true", "1")), UNREADABLE)
    quality = faces["quality"] if "quality" in faces else pd.Series(np.nan, index=faces.index)
    return pd.DataFrame({"person": faces["face_id"].astype("Int64").astype(str), "timestamp": faces["timestamp"],
                         "label": label, "quality": quality})


def runs(times: np.ndarray, labels: np.ndarray, step: float) -> list[tuple[float, float, str]]:
    """Runs of one label over sorted frame times: a run ends where the label changes or the
    frames stop for more than 1.5 steps; each frame stands for `step` seconds."""
    out = []
    start = 0
    for i in range(1, len(times) + 1):
        if i == len(times) or labels[i] != labels[start] or times[i] - times[i - 1] > 1.5 * step:
            out.append((float(times[start]), float(times[i - 1] + step), str(labels[start])))
            start = i
    return out


def frames_segments(frames: pd.DataFrame, column: str = "label") -> pd.DataFrame:
    """emoscope's coding: per person, runs of the same `column` (label or valence)."""
    step = frame_step(frames)
    rows = []
    for person, g in frame_labels(frames, column).sort_values("timestamp").groupby("person", sort=True):
        rows += [(person, s, e, lab) for s, e, lab in runs(g["timestamp"].to_numpy(float), g["label"].to_numpy(), step)]
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


# -- human codings --------------------------------------------------------------------------------
def read_label_map(path: str | None) -> dict[str, str]:
    """A label map file: JSON {"their label": "emoscope label"} or a CSV of from,to rows."""
    if not path:
        return {}
    if not os.path.exists(path):
        raise CodingError(f"label map {path} not found")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CodingError(f"label map {path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CodingError(f"label map {path} must be a JSON object of label: label")
        return {str(k).strip().lower(): str(v).strip() for k, v in data.items()}
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["from", "to"]:
        rows = rows[1:]
    if any(len(r) < 2 for r in rows):
        raise CodingError(f"label map {path}: every line needs two values, their label and emoscope's")
    return {r[0].strip().lower(): r[1].strip() for r in rows}


def map_label(raw: str, label_map: dict[str, str]) -> str | None:
    """A coder's label in emoscope's words: the label map first, then emoscope's aliases, then the
    valence words; None for a label neither knows (left uncoded)."""
    key = str(raw).strip().lower()
    if key in label_map:
        return label_map[key] or None
    if key in VALENCE_LABELS:
        return key
    if key == UNREADABLE:
        return UNREADABLE
    return canonical_label(key)


def read_coding(path: str, tier: str | None = None, label_map: dict[str, str] | None = None) -> pd.DataFrame:
    """A human coding as segments (person = the tier, subject or file name), labels mapped."""
    if not os.path.exists(path):
        raise CodingError(f"coding {path} not found")
    lower = path.lower()
    if lower.endswith(".eaf"):
        from .elan import read_eaf
        segments = read_eaf(path, tier)
    else:
        table = _read_table(path)
        from .boris import is_boris, read_boris
        segments = read_boris(table, tier, path) if is_boris(table) else _plain_segments(table, path)
    label_map = label_map or {}
    mapped = segments["label"].map(lambda v: map_label(v, label_map))
    unknown = sorted(set(segments.loc[mapped.isna(), "label"].astype(str)))
    if mapped.notna().sum() == 0:
        raise CodingError(f"{path}: none of its labels ({', '.join(unknown[:8])}) is an expression or valence emoscope "
                          f"knows; give a label map (--map FILE with lines like 'joy,happy')")
    out = segments.assign(label=mapped).dropna(subset=["label"]).reset_index(drop=True)
    out.attrs["unmapped"] = unknown
    return out


def _read_table(path: str) -> pd.DataFrame:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            head = f.read(4096)
        sep = "\t" if head.count("\t") > head.count(",") else ","
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise CodingError(f"{path} cannot be read as a table ({exc})") from None


def _plain_segments(table: pd.DataFrame, path: str) -> pd.DataFrame:
    cols = {c.strip().lower(): c for c in table.columns}
    person = os.path.splitext(os.path.basename(path))[0]
    if {"start_s", "end_s", "label"} <= set(cols):
        seg = pd.DataFrame({"start_s": pd.to_numeric(table[cols["start_s"]], errors="coerce"),
                            "end_s": pd.to_numeric(table[cols["end_s"]], errors="coerce"),
                            "label": table[cols["label"]].astype(str)})
    elif {"time_s", "label"} <= set(cols):
        pts = pd.DataFrame({"start_s": pd.to_numeric(table[cols["time_s"]], errors="coerce"),
                            "label": table[cols["label"]].astype(str)}).dropna().sort_values("start_s")
        if pts.empty:
            raise CodingError(f"{path}: no row with a numeric time_s")
        step = float(pts["start_s"].diff().median()) if len(pts) > 1 else 1.0  # the last point holds one step
        seg = pts.assign(end_s=pts["start_s"].shift(-1).fillna(pts["start_s"].iloc[-1] + step))
    else:
        raise CodingError(f"{path}: a coding CSV needs the columns start_s,end_s,label or time_s,label "
                          f"(it has {', '.join(map(str, table.columns[:8]))})")
    seg = seg.dropna()
    if seg.empty:
        raise CodingError(f"{path}: no row with numeric times")
    if (seg["end_s"] <= seg["start_s"]).any():
        raise CodingError(f"{path}: a segment ends before it starts (row {int((seg['end_s'] <= seg['start_s']).idxmax()) + 2})")
    return seg.assign(person=person)[SEGMENT_COLUMNS].reset_index(drop=True)


def labels_at(segments: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """The label each segment gives at each time (start <= t < end, to the millisecond, as coding
    tools store times; the latest start wins where segments overlap), or None where no segment
    covers it."""
    out = np.full(len(times), None, dtype=object)
    seg = segments.sort_values("start_s")
    t = np.round(np.asarray(times, float), 3)
    for s, e, lab in zip(np.round(seg["start_s"].to_numpy(float), 3), np.round(seg["end_s"].to_numpy(float), 3),
                         seg["label"]):
        out[(t >= s) & (t < e)] = lab
    return out


CODING_FORMATS = ("elan", "boris")


def write_codings(frames: pd.DataFrame, media: str, stem: str, formats: list[str], fps: float) -> list[str]:
    """emoscope's coding of a video in each of `formats`: STEM.eaf (ELAN) and STEM.boris.tsv
    (BORIS tabular events), an expression and a valence tier per person."""
    from .boris import write_boris
    from .elan import write_eaf
    tiers = {"expression": frames_segments(frames, "label"), "valence": frames_segments(frames, "valence")}
    duration = float(frames["timestamp"].max() + frame_step(frames)) if len(frames) else 0.0
    out = []
    if "elan" in formats:
        out.append(write_eaf(tiers, media, stem + ".eaf"))
    if "boris" in formats:
        out.append(write_boris(tiers, media, duration, fps, stem + ".boris.tsv"))
    return out
