"""BORIS (Behavioral Observation Research Interactive Software) events: emoscope's coding as a
tabular events file with BORIS's export columns (state events, a START and a STOP row each, per
subject = person), and a coder's BORIS export (tabular events with START/STOP rows, or
aggregated events with start and stop times) read back as segments."""

from __future__ import annotations

import os
from datetime import datetime

import pandas as pd

from .segments import SEGMENT_COLUMNS, CodingError

# BORIS's tabular events export, in its order
COLUMNS = ["Observation id", "Observation date", "Description", "Observation type", "Source", "Time offset (s)",
           "Media duration (s)", "FPS", "Subject", "Behavior", "Behavioral category", "Modifiers", "Behavior type",
           "Time", "Media file name", "Image index", "Image file path", "Comment"]


def write_boris(tiers: dict[str, pd.DataFrame], media: str, duration: float, fps: float, path: str) -> str:
    """`tiers`: {"expression": segments, "valence": segments}: each segment a state event of its
    person (Subject "person N"), Behavior = the label, Behavioral category = the tier."""
    observation = os.path.splitext(os.path.basename(media))[0]
    date = datetime.now().isoformat(timespec="seconds")
    rows = []
    for category, seg in tiers.items():
        for person, s, e, label in seg[SEGMENT_COLUMNS].itertuples(index=False):
            for kind, t in (("START", s), ("STOP", e)):
                rows.append({"Observation id": observation, "Observation date": date,
                             "Description": "emoscope coding", "Observation type": "Media file(s)",
                             "Source": f"player #1:{os.path.abspath(media)}", "Time offset (s)": 0.0,
                             "Media duration (s)": round(duration, 3), "FPS": round(fps, 3),
                             "Subject": f"person {person}", "Behavior": label, "Behavioral category": category,
                             "Modifiers": "", "Behavior type": kind, "Time": round(float(t), 3),
                             "Media file name": os.path.abspath(media), "Image index": "", "Image file path": "", "Comment": ""})
    df = pd.DataFrame(rows, columns=COLUMNS).sort_values(["Time", "Behavior type"], kind="stable")
    tmp = path + ".tmp"
    df.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)
    return path


def is_boris(table: pd.DataFrame) -> bool:
    cols = set(table.columns)
    return "Behavior" in cols and (("Time" in cols and ({"Behavior type", "Status"} & cols))
                                   or {"Start (s)", "Stop (s)"} <= cols)


def read_boris(table: pd.DataFrame, pick: str | None, path: str) -> pd.DataFrame:
    """Segments of one subject or behavioural category (`pick`); without it the file's only
    subject, or its "expression" category when it has one."""
    t = table.copy()
    t["Subject"] = t["Subject"].fillna("No focal subject").astype(str) if "Subject" in t else "No focal subject"
    category = t["Behavioral category"].fillna("").astype(str) if "Behavioral category" in t else pd.Series("", index=t.index)
    if pick is not None:
        keep = (t["Subject"] == pick) | (category == pick)
        if not keep.any():
            raise CodingError(f"{path} has no subject or behavioural category {pick!r} "
                              f"(subjects: {', '.join(sorted(t['Subject'].unique())[:12])})")
        t, category = t[keep], category[keep]
    if category.nunique() > 1 and (category == "expression").any():  # emoscope's own export: expressions
        t = t[category == "expression"]
    subjects = sorted(t["Subject"].unique())
    if pick is None and len(subjects) > 1:
        raise CodingError(f"{path} codes {len(subjects)} subjects; choose one with --tier ({', '.join(subjects[:12])})")
    person = pick or subjects[0]
    if {"Start (s)", "Stop (s)"} <= set(t.columns):
        seg = pd.DataFrame({"person": person, "start_s": pd.to_numeric(t["Start (s)"], errors="coerce"),
                            "end_s": pd.to_numeric(t["Stop (s)"], errors="coerce"), "label": t["Behavior"].astype(str)})
        return seg.dropna()[SEGMENT_COLUMNS].reset_index(drop=True)
    kind_col = "Behavior type" if "Behavior type" in t else "Status"
    rows, open_at = [], {}
    for behavior, kind, time in zip(t["Behavior"].astype(str), t[kind_col].astype(str).str.upper(),
                                    pd.to_numeric(t["Time"], errors="coerce")):
        if time != time:
            continue
        if kind == "START":
            open_at[behavior] = time
        elif kind == "STOP" and behavior in open_at:
            rows.append((person, open_at.pop(behavior), time, behavior))
    if not rows:
        raise CodingError(f"{path}: no complete state event (a START and a STOP row of one behaviour)")
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS).sort_values("start_s").reset_index(drop=True)
