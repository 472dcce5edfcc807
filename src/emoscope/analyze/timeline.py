"""`Timeline`: a pandas DataFrame of per-frame, per-face results, with per-person summaries and plots."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pandas as pd

from .face import Face
from .tracking import MIN_TRACK_FRAMES

BASE_COLUMNS = ["frame", "time", "track", "x", "y", "w", "h", "score"]
MAX_PLOTTED_PERSONS = 12  # panels of the timeline chart: the persons seen longest
MIN_READABLE_SHARE = 0.2  # a person read in fewer of their frames has no dominant expression ("unreadable")


def fit_columns(face: Face) -> dict:
    """The fit flag as columns: quality, readable, unreadable (the reason; empty when readable)."""
    if face.readable is None:
        return {}
    return {"quality": face.quality, "readable": bool(face.readable), "unreadable": face.unreadable or ""}


def readable_rows(df: pd.DataFrame) -> pd.Series:
    """Which rows count as an expression: readable faces (every row of a table without the flag)."""
    return df["readable"].astype(bool) if "readable" in df else pd.Series(True, index=df.index)


def measures(face: Face) -> dict:
    """The face-mesh measures of a face as flat columns (none without `Analyzer(mesh=True)`):
    mesh_presence, expression_from, yaw, pitch, roll, gaze_yaw, gaze_pitch, eyes_open, attention,
    the blendshapes by name and the approximate action units (AU01, ...)."""
    if face.mesh_presence is None:
        return {}
    if face.head_pose is None:  # the mesh found no face: its presence, nothing measured
        return {"mesh_presence": face.mesh_presence, "expression_from": face.expression_from}
    return {"mesh_presence": face.mesh_presence, "expression_from": face.expression_from, **face.head_pose,
            "gaze_yaw": face.gaze["yaw"], "gaze_pitch": face.gaze["pitch"],
            "eyes_open": face.eyes_open, "attention": face.attention, **face.blendshapes, **face.action_units}


class Timeline(pd.DataFrame):
    """Rows: frame, time (s), track (person id), box, detector score, one column per class
    probability (smoothed over time within a track), label, valence, valence_score, and
    short_track (the track has fewer than `MIN_TRACK_FRAMES` analysed frames: a flicker, left
    out of summaries and charts), gender_<class> probabilities when the analyzer estimates
    gender, and the face-mesh measures (`measures`) when it measures the mesh. `thumbnails` holds one face picture (BGR) per track."""

    _metadata = ["classes", "fps", "thumbnails"]

    @property
    def _constructor(self):
        return Timeline

    @staticmethod
    def row(frame: int, time: float, face: Face) -> dict:
        x, y, w, h = face.box
        return {"frame": frame, "time": round(time, 4), "track": face.track_id, "x": x, "y": y, "w": w, "h": h,
                "score": face.score, **face.probs, "label": face.label, "valence": face.valence,
                "valence_score": face.valence_score, **fit_columns(face),
                **{f"gender_{c}": v for c, v in (face.gender or {}).items()}, **measures(face)}

    @staticmethod
    def rows_frame(rows: list[dict], classes: list[str]) -> pd.DataFrame:
        """Timeline rows as a plain DataFrame (in parts, a long video's rows never sit in memory
        as dicts: with the mesh a row holds about a hundred values)."""
        cols = BASE_COLUMNS + list(classes) + ["label", "valence", "valence_score"]
        cols += [k for k in (rows[0] if rows else {}) if k not in cols]  # e.g. gender_<class> when asked for
        return pd.DataFrame(rows, columns=cols)

    @classmethod
    def from_rows(cls, rows: list[dict], classes: list[str], fps: float,
                  thumbnails: dict[int, np.ndarray] | None = None,
                  min_track_frames: int = MIN_TRACK_FRAMES, parts: list[pd.DataFrame] | None = None) -> "Timeline":
        """A Timeline of `rows` (after the DataFrames `parts` of earlier rows, when given)."""
        frames = [p for p in (parts or []) if len(p)] + ([cls.rows_frame(rows, classes)] if rows or not parts else [])
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames \
            else cls.rows_frame([], classes)
        df["short_track"] = df.groupby("track")["frame"].transform("size") < min_track_frames if len(df) else []
        tl = cls(df)
        tl.classes, tl.fps, tl.thumbnails = list(classes), float(fps), dict(thumbnails or {})
        return tl

    def summary(self, thumbnail_dir: str | None = None) -> pd.DataFrame:
        """One row per person (short tracks left out): time on screen, dominant expression, share
        of readable frames per expression (unreadable frames counted apart; a person readable in
        under MIN_READABLE_SHARE of their frames has "unreadable" as dominant), mean valence, the peak positive and negative moments,
        and a `thumbnail` of the face: a BGR array, or with `thumbnail_dir` the path of a PNG
        written there (person<track>.png)."""
        classes = self.classes
        thumbs = getattr(self, "thumbnails", None) or {}
        if thumbnail_dir:
            os.makedirs(thumbnail_dir, exist_ok=True)
        out = []
        df = pd.DataFrame(self)
        for track, every_row in df[~df["short_track"].astype(bool)].groupby("track"):
            g = every_row[readable_rows(every_row)]
            if len(g) == 0 or len(g) < MIN_READABLE_SHARE * len(every_row):  # a person seen, too rarely readable
                out.append({"track": int(track), "frames": len(every_row), "unreadable_frames": len(every_row),
                            "first_s": float(every_row["time"].min()), "last_s": float(every_row["time"].max()),
                            "dominant": "unreadable"})
                out[-1]["thumbnail"] = self._thumbnail(thumbs, track, thumbnail_dir)
                continue
            share = g["label"].value_counts(normalize=True)
            mean_probs = g[classes].mean()
            pos, neg = g["valence_score"].idxmax(), g["valence_score"].idxmin()
            out.append({
                "track": int(track), "frames": len(every_row), "unreadable_frames": len(every_row) - len(g),
                "first_s": float(every_row["time"].min()), "last_s": float(every_row["time"].max()),
                "dominant": str(mean_probs.idxmax()),
                **{f"share_{c}": round(float(share.get(c, 0.0)), 4) for c in classes},
                "mean_valence": round(float(g["valence_score"].mean()), 4),
                "peak_positive_s": float(g.at[pos, "time"]), "peak_positive": round(float(g.at[pos, "valence_score"]), 4),
                "peak_negative_s": float(g.at[neg, "time"]), "peak_negative": round(float(g.at[neg, "valence_score"]), 4),
            })
            out[-1]["thumbnail"] = self._thumbnail(thumbs, track, thumbnail_dir)
        return pd.DataFrame(out)

    @staticmethod
    def _thumbnail(thumbs: dict, track, thumbnail_dir: str | None):
        """A person's face picture: the BGR array, or with `thumbnail_dir` the PNG written there."""
        thumb = thumbs.get(int(track))
        if thumb is not None and thumbnail_dir:
            path = os.path.join(thumbnail_dir, f"person{int(track)}.png")
            cv2.imwrite(path, thumb)
            thumb = path
        return thumb

    def plot(self, path: str | None = None):
        """Expression probabilities over time (stacked) and valence, one panel per person (short
        tracks left out; the MAX_PLOTTED_PERSONS persons seen longest). Saves a PNG when `path` is given; returns the matplotlib figure."""
        from ..presentation import clock, expression_color
        from ..report import pyplot

        plt = pyplot()

        df = pd.DataFrame(self)
        df = df[~df["short_track"].astype(bool)]
        # the persons seen longest, at most MAX_PLOTTED_PERSONS panels (a crowd would make a chart no
        # one can read and that takes minutes to draw); every person stays in the summary
        longest = df["track"].value_counts().index[:MAX_PLOTTED_PERSONS]
        tracks = sorted(longest)
        df = df[df["track"].isin(tracks)].copy()
        df.loc[~readable_rows(df), list(self.classes) + ["valence_score"]] = np.nan  # gaps, never an expression
        n = max(1, len(tracks))
        fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n), squeeze=False, sharex=True)
        for ax, track in zip(axes[:, 0], tracks):
            g = df[df["track"] == track].sort_values("time")
            colors = [expression_color(c) for c in self.classes]
            ax.stackplot(g["time"], *[g[c] for c in self.classes], labels=self.classes, colors=colors, alpha=0.85)
            ax2 = ax.twinx()
            ax2.plot(g["time"], g["valence_score"], color="black", lw=1.4, label="valence")
            ax2.set_ylim(-1.05, 1.05)
            ax2.set_ylabel("valence")
            ax.set_ylim(0, 1)
            ax.set_ylabel("probability")
            ax.set_title(f"person {track}")
            thumb = (getattr(self, "thumbnails", None) or {}).get(int(track))
            if thumb is not None:
                inset = ax.inset_axes([-0.27, 0.05, 0.12, 0.9])  # left of the axis and its labels
                inset.imshow(thumb[..., ::-1])
                inset.axis("off")
        if len(tracks) == 0:
            axes[0, 0].text(0.5, 0.5, "no faces found", ha="center", va="center")
        if len(tracks):
            axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.13, 1.0), fontsize=8)  # clear of the valence axis
        axes[-1, 0].set_xlabel("time (m:ss)")
        axes[-1, 0].xaxis.set_major_formatter(lambda t, _pos: clock(t))
        fig.tight_layout()
        fig.subplots_adjust(left=max(fig.subplotpars.left, 0.2), right=min(fig.subplotpars.right, 0.8))  # faces, legend
        if path:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig
