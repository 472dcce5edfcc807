"""Ad tests: recordings of many viewers watching the same stimulus, aligned on time from the start
of each recording and aggregated second by second: how many viewers show a face, their mean
valence with a 95% confidence interval, the share of each expression, the moments that move the
audience (peaks that hold across viewers), engagement, and the same per group of viewers."""

from __future__ import annotations

import csv
import html
import json
import math
import os
import sys
import time
from contextlib import contextmanager

import cv2

import numpy as np
import pandas as pd

from ..analyze.timeline import readable_rows
from ..labels import EXPRESSIONS
from ..presentation import clock, expression_color, share, whole_seconds
from ..report import PlottingUnavailable, png_tag, table, write_html
from .store import read_table, schemas

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (larger: 1.96 + 2.4/df, within 0.002).
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
PEAK_GAP_S = 3   # peaks of one sign are at least this many seconds apart
PEAKS = 3        # strongest moments reported per sign


def t95(df: int) -> float:
    if df < 1:
        return float("nan")
    return T95[df - 1] if df <= len(T95) else 1.96 + 2.4 / df


def prob_columns(faces: pd.DataFrame) -> list[str]:
    """The expression classes: the probability columns between `score` and `label`."""
    cols = list(faces.columns)
    return cols[cols.index("score") + 1: cols.index("label")]


def viewer_seconds(faces: pd.DataFrame, classes: list[str], offsets: dict[str, float] | None = None,
                   length: float | None = None) -> pd.DataFrame:
    """One row per viewer (recording) per second of the stimulus in which a face was found. Time
    is counted from where the stimulus starts in each recording (`offsets`, seconds; 0 when not
    given) and frames outside the stimulus (before it starts, or after `length`) are left out.
    The viewer is the largest face of each analysed frame, counted only where the fit flag finds
    it readable; a second's valence and probabilities
    are the means over its frames, its label the most probable mean class, `attentive` the share
    of its frames facing the camera (when the faces carry the mesh's `attention`)."""
    columns = ["viewer", "second", *classes, "valence", "label", "attentive"]
    v = faces[faces["kind"] == "video"]
    if v.empty:
        return pd.DataFrame(columns=columns)
    v = v.assign(area=v["w"] * v["h"])
    v = v.loc[v.groupby(["source", "frame"])["area"].idxmax()]
    v = v[readable_rows(v)]  # the viewer's face could not be read: no expression that frame
    t = v["time_s"] - v["source"].map(lambda src: offset_of(src, offsets)).astype(float)
    v = v.assign(t=t)[(t >= 0) & ((t < length) if length else True)]
    if v.empty:
        return pd.DataFrame(columns=columns)
    v = v.assign(second=np.floor(v["t"]).astype(int),
                 attentive=v["attention"].astype(float) if "attention" in v else np.nan)
    out = v.groupby(["source", "second"])[[*classes, "valence_score", "attentive"]].mean().reset_index()
    out["label"] = out[classes].idxmax(axis=1)
    return out.rename(columns={"source": "viewer", "valence_score": "valence"})[columns]


def _interval(x: pd.Series) -> tuple[float, float]:
    """Mean and the half width of its 95% confidence interval (nan with fewer than 2 values)."""
    n = len(x)
    half = t95(n - 1) * x.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    return float(x.mean()), float(half)


def per_second(vs: pd.DataFrame, classes: list[str], seconds: int) -> pd.DataFrame:
    """Per second from 0 to `seconds` - 1: viewers with a face, mean valence and its 95% CI, the
    mean change from each viewer's own average valence (what the moment does to people, whatever
    their resting face reads as) and its CI, the share of viewers showing each expression."""
    vs = vs.assign(change=vs["valence"] - vs.groupby("viewer")["valence"].transform("mean"))
    rows = []
    for second in range(seconds):
        g = vs[vs["second"] == second]
        mean, half = _interval(g["valence"]) if len(g) else (float("nan"), float("nan"))
        change, chalf = _interval(g["change"]) if len(g) else (float("nan"), float("nan"))
        rows.append({"second": second, "viewers": len(g), "valence": mean, "ci_low": mean - half, "ci_high": mean + half,
                     "change": change, "change_ci_low": change - chalf, "change_ci_high": change + chalf,
                     "agree_up": float((g["change"] > 0).mean()) if len(g) else float("nan"),
                     **{f"share_{c}": float((g["label"] == c).mean()) if len(g) else float("nan") for c in classes}})
    return pd.DataFrame(rows, columns=["second", "viewers", "valence", "ci_low", "ci_high", "change", "change_ci_low",
                                       "change_ci_high", "agree_up", *[f"share_{c}" for c in classes]])


def find_peaks(curve: pd.DataFrame, min_viewers: int, top: int = PEAKS, gap: int = PEAK_GAP_S) -> pd.DataFrame:
    """The strongest positive and negative moments that hold across viewers: seconds whose mean
    change from the viewers' own averages has a 95% CI entirely above (below) zero, with at least
    `min_viewers` viewers, ranked by the CI bound nearest zero (so one viewer's spike, with its
    wide interval, never ranks), at least `gap` seconds apart."""
    rows = []
    ok = curve[curve["viewers"] >= min_viewers]
    for kind, bound, sign in (("positive", "change_ci_low", 1), ("negative", "change_ci_high", -1)):
        cand = ok[sign * ok[bound] > 0].sort_values(bound, ascending=sign < 0)
        chosen: list[int] = []
        for _, r in cand.iterrows():
            if len(chosen) < top and all(abs(r["second"] - s) >= gap for s in chosen):
                chosen.append(int(r["second"]))
                agree = r["agree_up"] if sign > 0 else 1 - r["agree_up"]
                rows.append({"kind": kind, "second": int(r["second"]), "viewers": int(r["viewers"]),
                             "valence": r["valence"], "change": r["change"], "change_ci_low": r["change_ci_low"],
                             "change_ci_high": r["change_ci_high"], "viewers_agreeing": agree})
    return pd.DataFrame(rows, columns=["kind", "second", "viewers", "valence", "change", "change_ci_low",
                                       "change_ci_high", "viewers_agreeing"])


def recorded_seconds(duration: float, offset: float, length: float | None) -> int:
    """Seconds of the stimulus a recording covers: from its offset to its end (or the stimulus's
    end), as `whole_seconds`."""
    covered = duration - offset
    if length:
        covered = min(covered, length)
    return whole_seconds(covered)


def viewer_table(vs: pd.DataFrame, durations: pd.Series, groups: dict[str, str] | None,
                 offsets: dict[str, float] | None = None, length: float | None = None) -> pd.DataFrame:
    """Per viewer: seconds of the stimulus recorded and with a face (engagement = their ratio),
    with the mesh the seconds facing the screen (attention = their ratio to the seconds recorded),
    mean valence, dominant expression, the second of their highest and lowest valence, and their
    group."""
    rows = []
    for viewer, duration in durations.items():
        recorded = recorded_seconds(duration, offset_of(viewer, offsets), length)
        g = vs[(vs["viewer"] == viewer) & (vs["second"] < recorded)]
        attentive = int((g["attentive"] > 0.5).sum()) if g["attentive"].notna().any() else None
        rows.append({"viewer": viewer, "group": group_of(viewer, groups) if groups else None,
                     "offset_s": offset_of(viewer, offsets), "seconds": recorded, "seconds_with_face": len(g),
                     "engagement": len(g) / recorded if recorded else float("nan"),
                     "seconds_attentive": attentive,
                     "attention": attentive / recorded if attentive is not None and recorded else float("nan"),
                     "mean_valence": g["valence"].mean() if len(g) else float("nan"),
                     "dominant": g["label"].mode().iat[0] if len(g) else None,
                     "best_second": int(g.loc[g["valence"].idxmax(), "second"]) if len(g) else None,
                     "worst_second": int(g.loc[g["valence"].idxmin(), "second"]) if len(g) else None})
    out = pd.DataFrame(rows, columns=["viewer", "group", "offset_s", "seconds", "seconds_with_face", "engagement",
                                      "seconds_attentive", "attention", "mean_valence", "dominant", "best_second",
                                      "worst_second"])
    if not groups:
        out = out.drop(columns=["group"])
    if out["seconds_attentive"].isna().all():
        out = out.drop(columns=["seconds_attentive", "attention"])
    return out


def read_video_table(path: str, column: str, parse, what: str) -> dict:
    """video -> `parse(column)` from a CSV with the columns video,<column> (video: a path, file
    name or stem), with errors in plain words."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"video", column} <= {c.strip() for c in reader.fieldnames}:
                raise ValueError(f"{path}: needs the columns video,{column}")
            out = {}
            for line, r in enumerate(reader, start=2):
                if not (r.get("video") or "").strip():
                    continue
                try:
                    out[r["video"].strip()] = parse((r.get(column) or "").strip())
                except ValueError:
                    raise ValueError(f"{path}, line {line}: {column} must be {what}") from None
            return out
    except (UnicodeDecodeError, csv.Error):
        raise ValueError(f"{path} is not a text CSV file (UTF-8) with the columns video,{column}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or 'input/output error'})") from None


def read_groups(path: str) -> dict[str, str]:
    """video -> group from a CSV with columns video,group."""
    return read_video_table(path, "group", str, "a name")


MAX_OFFSET_S = 86_400.0  # a day: no recording holds the stimulus later than this


def offset_seconds(text: str) -> float:
    """An offset in seconds: a finite number from 0 to MAX_OFFSET_S, else ValueError."""
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= MAX_OFFSET_S:
        raise ValueError(text)
    return value


def read_offsets(path: str) -> dict[str, float]:
    """video -> offset_s (where the stimulus starts in that recording) from a CSV video,offset_s."""
    return read_video_table(path, "offset_s", offset_seconds, f"a number of seconds from 0 to {MAX_OFFSET_S:,.0f}")


def _keys(source: str) -> tuple[str, str, str]:
    return source, os.path.basename(source), os.path.splitext(os.path.basename(source))[0]


def group_of(source: str, groups: dict[str, str] | None) -> str | None:
    """The group a recording belongs to (its path, file name or stem in `groups`), or None."""
    return next((groups[k] for k in _keys(source) if k in (groups or {})), None)


def offset_of(source: str, offsets: dict[str, float] | None) -> float:
    """Where the stimulus starts in a recording, in seconds (0 when `offsets` does not name it)."""
    return next((offsets[k] for k in _keys(source) if k in (offsets or {})), 0.0)


def unmatched(names: dict[str, object] | None, sources) -> list[str]:
    """The names of a groups or offsets file that match no recording."""
    known = {k for s in sources for k in _keys(s)}
    return sorted(n for n in (names or {}) if n not in known)


def permutation_p(a: np.ndarray, b: np.ndarray, rounds: int = 10_000, seed: int = 0) -> float:
    """Two-sided permutation test of a difference in means between two groups of viewers."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    both = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((rounds, len(both))), axis=1)
    diffs = np.abs(both[perms[:, :len(a)]].mean(1) - both[perms[:, len(a):]].mean(1))
    return float((np.sum(diffs >= observed - 1e-12) + 1) / (rounds + 1))


def aggregate(faces: pd.DataFrame, manifest: pd.DataFrame, groups: dict[str, str] | None = None,
              offsets: dict[str, float] | None = None, length: float | None = None) -> dict:
    """The campaign's tables from a batch job's faces and manifest: per_second (over the stimulus's
    `length` when known, else the longest aligned recording), peaks, viewers, warnings, and with
    `groups` per_second and peaks for each group, the group sizes and a permutation test of the
    difference between groups at each moment. Recordings without a group stay out of the group
    comparisons; names in `groups` or `offsets` that match no recording are warned about."""
    classes = prob_columns(faces)
    done = manifest[(manifest["kind"] == "video") & (manifest["status"] == "done")]
    durations = done.set_index("source")["duration_s"]
    vs = viewer_seconds(faces[faces["source"].isin(durations.index)], classes, offsets, length)
    covered = [recorded_seconds(d, offset_of(s, offsets), length) for s, d in durations.items()]
    seconds = whole_seconds(length) if length else max(covered, default=0)
    # a viewer counts in a second only while their recording runs: seconds after it stops are missing
    vs = vs[vs["second"] < vs["viewer"].map(dict(zip(durations.index, covered)))]

    def analyse(part: pd.DataFrame, n_viewers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        curve = per_second(part, classes, seconds)
        return curve, find_peaks(curve, max(2, math.ceil(n_viewers / 2)))

    curve, peaks = analyse(vs, len(durations))
    warnings = [f"{kind} names {n!r}, which matches no recording" for kind, names in (("groups file", groups),
                ("offsets file", offsets)) for n in unmatched(names, manifest["source"])]
    out = {"per_second": curve, "peaks": peaks, "classes": classes, "seconds": seconds,
           "viewers": viewer_table(vs, durations, groups, offsets, length),
           "failed": manifest[manifest["status"] == "failed"][["source", "reason"]], "warnings": warnings}
    if groups:
        by_group = {s: group_of(s, groups) for s in durations.index}
        ungrouped = sorted(os.path.basename(s) for s, g in by_group.items() if g is None)
        if ungrouped:
            warnings.append(f"no group for {len(ungrouped)} recording(s), left out of the group comparison: "
                            + ", ".join(ungrouped))
        names = sorted({g for g in by_group.values() if g is not None})
        curves, peak_tables = [], []
        for name in names:
            members = [s for s, g in by_group.items() if g == name]
            c, p = analyse(vs[vs["viewer"].isin(members)], len(members))
            curves.append(c.assign(group=name))
            peak_tables.append(p.assign(group=name))
        empty = pd.DataFrame(columns=[*curve.columns, "group"])
        out["per_second_by_group"] = pd.concat(curves, ignore_index=True) if curves else empty
        out["peaks_by_group"] = pd.concat(peak_tables, ignore_index=True) if peak_tables else \
            pd.DataFrame(columns=[*peaks.columns, "group"])
        out["group_sizes"] = pd.DataFrame({"group": names, "viewers": [sum(g == n for g in by_group.values())
                                                                        for n in names]})
        out["group_tests"] = group_tests(vs, peaks, by_group, names)
    return out


MIN_GROUP_VIEWERS = 4  # fewer viewers in a group: no test (with 3 against 3 no difference can reach p < 0.05)


def group_tests(vs: pd.DataFrame, peaks: pd.DataFrame, by_group: dict, names: list[str]) -> pd.DataFrame:
    """At each moment of the whole audience, each pair of groups: their mean change from their
    own average valence, and the permutation test's p-value for the difference where both groups
    have MIN_GROUP_VIEWERS viewers there (else no p-value, and `note` says why)."""
    vs = vs.assign(change=vs["valence"] - vs.groupby("viewer")["valence"].transform("mean"),
                   group=vs["viewer"].map(by_group))
    rows = []
    for _, p in peaks.iterrows():
        at = vs[vs["second"] == p["second"]]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                xa, xb = at.loc[at["group"] == a, "change"], at.loc[at["group"] == b, "change"]
                testable = min(len(xa), len(xb)) >= MIN_GROUP_VIEWERS
                rows.append({"second": int(p["second"]), "kind": p["kind"], "group_a": a, "group_b": b,
                             "n_a": len(xa), "n_b": len(xb), "change_a": xa.mean() if len(xa) else None,
                             "change_b": xb.mean() if len(xb) else None,
                             "p_value": permutation_p(xa, xb) if testable else None,
                             "note": "" if testable else f"no test: each group needs {MIN_GROUP_VIEWERS} viewers "
                                                        f"here (has {len(xa)} and {len(xb)})"})
    return pd.DataFrame(rows, columns=["second", "kind", "group_a", "group_b", "n_a", "n_b", "change_a", "change_b",
                                       "p_value", "note"])


def describe_peak(p) -> str:
    direction = "rose above" if p["kind"] == "positive" else "fell below"
    return (f"At {clock(p['second'])}, valence {direction} the viewers' own average by {abs(p['change']):.2f} "
            f"(95% CI {p['change_ci_low']:+.2f} to {p['change_ci_high']:+.2f}); {p['viewers_agreeing']:.0%} of "
            f"{p['viewers']} viewers moved that way.")


FEW_VIEWERS = 0.5  # seconds with fewer than this share of the viewers are drawn faded


def _mmss_axis(ax, seconds: int) -> None:
    ticks = list(range(0, seconds + 1, max(1, int(math.ceil(seconds / 12 / 5)) * 5 if seconds > 12 else 1)))
    ax.set_xticks(ticks)
    ax.set_xticklabels([clock(t) for t in ticks])
    ax.set_xlim(0, max(1, seconds))


def _charts(res: dict, out: str, title: str, n_viewers: int) -> dict[str, dict]:
    """The report's charts as PNG files, each with its title, n and axes in mm:ss: the change from
    each viewer's own average valence (what the moments are computed on) with its 95% CI, seconds
    with few viewers faded, the moments marked, the absolute valence dashed; the expression
    shares as bars per second; the groups compared. Returns, per chart, its path and the
    horizontal extent of its axes in the figure (for the report's playhead)."""
    from ..report import pyplot
    plt = pyplot()
    curve, charts, seconds = res["per_second"], {}, res["seconds"]
    mid = curve["second"] + 0.5  # a second's value is drawn at its middle

    def finish(ax, ylabel: str, chart_title: str, ylim=(-1, 1)) -> None:
        if ylim[0] < 0:
            ax.axhline(0, color="gray", lw=0.6)
        ax.set_ylim(*ylim)
        _mmss_axis(ax, seconds)
        ax.set_xlabel("time in the stimulus (m:ss)")
        ax.set_ylabel(ylabel)
        ax.set_title(chart_title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)

    def save(fig, ax, name):
        fig.tight_layout()
        path = os.path.join(out, f"{name}.png")
        fig.savefig(path, dpi=110)
        box = ax.get_position()
        charts[name] = {"path": path, "x0": box.x0, "x1": box.x1, "seconds": seconds}
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3.8))
    few = curve["viewers"] < FEW_VIEWERS * max(1, n_viewers)
    for faded, alpha in ((False, 0.28), (True, 0.08)):
        mask = (few == faded).to_numpy()
        if not mask.any():  # a legend entry only for what is drawn
            continue
        ax.fill_between(mid, curve["change_ci_low"], curve["change_ci_high"], where=mask, step="mid",
                        color="#4c72b0", alpha=alpha, lw=0,
                        label=("95% CI" if not faded else f"95% CI, seconds with under {FEW_VIEWERS:.0%} of viewers"))
    ax.plot(mid, curve["change"], color="#4c72b0", lw=1.8, label="change from own average valence")
    ax.plot(mid, curve["valence"], color="#555555", lw=1, ls=":", label="absolute valence")
    for kind, color in (("positive", "#2a9d3a"), ("negative", "#c0392b")):
        for i, (_, p) in enumerate(res["peaks"][res["peaks"]["kind"] == kind].iterrows()):
            ax.axvline(p["second"] + 0.5, color=color, ls="--", lw=1.2,
                       label=f"{kind} moment" if i == 0 else None)
    n_axis = ax.twinx()  # the viewers behind each second, so a thin second reads as thin
    n_axis.step(mid, curve["viewers"], where="mid", color="#bbbbbb", lw=1)
    n_axis.set_ylim(0, max(1, n_viewers) * 3)  # in the lower third, under the curves
    n_axis.set_yticks(sorted({0, max(1, n_viewers)}))
    n_axis.set_ylabel("viewers (n), grey", color="#888888")
    ax.plot([], [], color="#bbbbbb", lw=1, label="viewers with a face (n, right axis)")
    # intervals drawn in full: the axis grows past -1..+1 where they reach
    low = float(np.nanmin(curve["change_ci_low"])) if curve["change_ci_low"].notna().any() else -1.0
    high = float(np.nanmax(curve["change_ci_high"])) if curve["change_ci_high"].notna().any() else 1.0
    ylim = (min(-1.0, math.floor(low * 2) / 2), max(1.0, math.ceil(high * 2) / 2))
    finish(ax, "valence: change from own average", f"{title}: valence, change from each viewer's own average "
                                                    f"(n = {n_viewers} viewers)", ylim)
    save(fig, ax, "valence")

    classes = res["classes"]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    bottom = np.zeros(len(curve))
    for c in classes:
        share = curve[f"share_{c}"].fillna(0).to_numpy()
        ax.bar(mid, share, width=1.0, bottom=bottom, color=expression_color(c),
               label=c, edgecolor="white", linewidth=0.3)
        bottom += share
    finish(ax, "share of viewers with a face", f"{title}: expressions per second (n = {n_viewers} viewers)", (0, 1))
    save(fig, ax, "expressions")

    if len(res.get("per_second_by_group", [])):
        sizes = dict(zip(res["group_sizes"]["group"], res["group_sizes"]["viewers"]))
        fig, ax = plt.subplots(figsize=(10, 3.8))
        lows, highs = [-1.0], [1.0]
        for name, g in res["per_second_by_group"].groupby("group"):
            gm, n = g["second"] + 0.5, sizes.get(name, 0)
            banded = n >= MIN_GROUP_VIEWERS  # a band over 2 or 3 viewers says nothing and fills the chart
            line = ax.plot(gm, g["change"], lw=1.6, label=f"{name} (n = {n}" + (")" if banded else
                           f"; under {MIN_GROUP_VIEWERS}: no interval)"))[0]
            if banded:
                ax.fill_between(gm, g["change_ci_low"], g["change_ci_high"], color=line.get_color(), alpha=0.15, lw=0)
                lows.append(float(np.nanmin(g["change_ci_low"])) if g["change_ci_low"].notna().any() else -1.0)
                highs.append(float(np.nanmax(g["change_ci_high"])) if g["change_ci_high"].notna().any() else 1.0)
            else:
                lows.append(float(np.nanmin(g["change"])) if g["change"].notna().any() else -1.0)
                highs.append(float(np.nanmax(g["change"])) if g["change"].notna().any() else 1.0)
        finish(ax, "valence: change from own average", f"{title}: groups compared",
               (math.floor(min(lows) * 2) / 2, math.ceil(max(highs) * 2) / 2))
        save(fig, ax, "groups")
    return charts


def stimulus_info(path: str) -> tuple[float, float]:
    """(length in seconds, frames per second) of the stimulus video."""
    from ..analyze.video import VideoReader
    reader = VideoReader(path, max_frames=1)
    try:
        frames = reader.frame_count or sum(1 for _ in VideoReader(path))
        return frames / reader.fps, reader.fps
    finally:
        reader.close()


def copy_stimulus(path: str, out: str, seconds: list[int]) -> tuple[str, dict[int, str]]:
    """The stimulus re-encoded for browsers (stimulus.mp4 in `out`), and a PNG still of the middle
    of each second in `seconds`."""
    from ..analyze.annotate import AnnotatedVideo
    from ..analyze.video import VideoReader
    reader = VideoReader(path)
    writer = AnnotatedVideo(os.path.join(out, "stimulus.mp4"), reader.fps)
    wanted = {int(round((s + 0.5) * reader.fps)): s for s in seconds}
    stills = {}
    try:
        for index, frame in reader:
            writer.write(frame)
            if index in wanted:
                still = os.path.join(out, f"moment-{wanted[index]:04d}.png")
                cv2.imwrite(still, cv2.resize(frame, (320, int(round(320 * frame.shape[0] / frame.shape[1])))))
                stills[wanted[index]] = still
    finally:
        writer.close()
        reader.close()
    return "stimulus.mp4", stills


PLAYHEAD_JS = """
<script>
(function () {
  var ad = document.getElementById('stimulus');
  var charts = document.querySelectorAll('.synced');
  function seek(t) { if (ad) { ad.currentTime = t; } }
  charts.forEach(function (box) {
    var img = box.querySelector('img'), cursor = box.querySelector('.cursor');
    var x0 = parseFloat(box.dataset.x0), x1 = parseFloat(box.dataset.x1), n = parseFloat(box.dataset.seconds);
    img.addEventListener('click', function (e) {
      var f = (e.offsetX / img.clientWidth - x0) / (x1 - x0);
      if (f >= 0 && f <= 1) { seek(f * n); }
    });
    function place() {
      if (!ad) { return; }
      cursor.style.left = ((x0 + (x1 - x0) * Math.min(ad.currentTime, n) / n) * img.clientWidth) + 'px';
      cursor.style.display = 'block';
    }
    if (ad) { ad.addEventListener('timeupdate', place); ad.addEventListener('seeked', place); }
  });
  document.querySelectorAll('[data-seek]').forEach(function (el) {
    el.addEventListener('click', function () { seek(parseFloat(el.dataset.seek)); });
  });
})();
</script>
"""
SYNC_STYLE = ("<style>.synced{position:relative;display:inline-block;cursor:crosshair}.synced img{max-width:100%}"
              ".cursor{position:absolute;top:0;bottom:0;width:2px;background:#e67e22;display:none;pointer-events:none}"
              "[data-seek]{cursor:pointer}.moment{display:flex;gap:12px;align-items:center;margin:6px 0}"
              ".warn{background:#fff4e0;border-left:4px solid #e67e22;padding:6px 10px}</style>")


def _synced(chart: dict, alt: str) -> str:
    return (f"<div class='synced' data-x0='{chart['x0']:.4f}' data-x1='{chart['x1']:.4f}' "
            f"data-seconds='{chart['seconds']}'>{png_tag(chart['path'], alt)}<div class='cursor'></div></div>")


def write_pdf(res: dict, charts: dict, stills: dict[int, str], path: str, title: str,
              cover: dict[str, str] | None = None, overview: list[str] | None = None) -> str:
    """report.pdf: a cover (title, and what `cover` says: date, model, settings, n, alignment), an
    overview (the `overview` sentences and the first moments), then landscape pages with the
    curves, the moments with stills, the groups and their tests, and the per-viewer table."""
    import textwrap

    from matplotlib.backends.backend_pdf import PdfPages

    from ..report import cells, pyplot
    plt = pyplot()
    with PdfPages(path) as pdf:

        @contextmanager
        def page(heading: str):
            fig = plt.figure(figsize=(11.69, 8.27))  # A4 landscape
            fig.text(0.05, 0.95, heading, fontsize=16)
            yield fig
            pdf.savefig(fig)
            plt.close(fig)

        def paragraphs(fig, texts: list[str], top: float, size: int = 11) -> float:
            y = top
            for text in texts:
                lines = textwrap.wrap(text, 150)
                fig.text(0.05, y, "\n".join(lines), fontsize=size, va="top")
                y -= 0.03 * len(lines) + 0.025
            return y

        def cell_table(fig, df: pd.DataFrame, box: list[float]) -> None:
            ax = fig.add_axes(box)
            ax.axis("off")
            t = ax.table(cellText=cells(df, "{:.2f}"), colLabels=[c.replace("_", " ") for c in df.columns],
                         loc="upper center")
            t.auto_set_font_size(False)
            t.set_fontsize(7)
            t.auto_set_column_width(list(range(len(df.columns))))

        with page(title) as fig:
            fig.text(0.05, 0.88, "emoscope ad-test report", fontsize=12, color="#555")
            for i, (key, value) in enumerate((cover or {}).items()):
                fig.text(0.05, 0.78 - i * 0.06, f"{key}:", fontsize=12, weight="bold")
                fig.text(0.30, 0.78 - i * 0.06, str(value), fontsize=12, wrap=True)
        with page(f"{title}: overview") as fig:
            y = paragraphs(fig, overview or [], 0.88)
            moments = [describe_peak(p) for _, p in res["peaks"].head(3).iterrows()]
            fig.text(0.05, y - 0.02, "Moments that moved the audience" if moments else
                     "No moment moved the viewers together beyond chance (95% confidence).", fontsize=13,
                     weight="bold", va="top")
            paragraphs(fig, moments, y - 0.08)
        for name in ("valence", "expressions", "groups"):
            if name in charts:
                with page(title) as fig:
                    fig.figimage(plt.imread(charts[name]["path"]), xo=40, yo=200)
        if len(res["peaks"]):
            with page(f"{title}: moments that moved the audience") as fig:
                for i, (_, p) in enumerate(res["peaks"].head(6).iterrows()):
                    y = 0.78 - i * 0.14
                    if p["second"] in stills:
                        ax = fig.add_axes([0.05, y - 0.05, 0.16, 0.12])
                        ax.imshow(plt.imread(stills[p["second"]]))
                        ax.axis("off")
                    fig.text(0.24, y, describe_peak(p), fontsize=10, wrap=True)
        if "group_sizes" in res:
            with page(f"{title}: groups compared") as fig:
                cell_table(fig, res["group_sizes"], [0.05, 0.72, 0.4, 0.18])
                tests = res["group_tests"]
                fig.text(0.05, 0.66, "Differences between groups at each moment (permutation test)", fontsize=13,
                         weight="bold")
                if len(tests):
                    cell_table(fig, tests.head(20), [0.03, 0.05, 0.94, 0.58])
                else:
                    fig.text(0.05, 0.60, "No moment to compare the groups at.", fontsize=11)
        viewers = res["viewers"]
        if len(viewers):
            with page(f"{title}: viewers") as fig:
                cell_table(fig, viewers_shown(viewers.head(30)), [0.03, 0.05, 0.94, 0.85])
    return path


def viewers_shown(viewers: pd.DataFrame) -> pd.DataFrame:
    """The viewers table as reports show it: file names, shares as percentages, seconds as m:ss,
    friendly column names (viewers.csv keeps the raw values)."""
    shown = viewers.copy()
    shown["viewer"] = shown["viewer"].map(os.path.basename)
    for c in ("engagement", "attention"):
        if c in shown:
            shown[c] = shown[c].map(share)
    for c in ("best_second", "worst_second"):
        shown[c] = shown[c].map(lambda v: clock(int(v)) if pd.notna(v) else "–")
    names = {"offset_s": "offset (s)", "seconds": "seconds recorded", "best_second": "most positive at",
             "worst_second": "most negative at"}
    return shown.rename(columns=names).rename(columns=lambda c: c.replace("_", " "))


def overview_sentences(res: dict, aligned: str) -> list[str]:
    """What a campaign report says first, in plain sentences (the HTML's overview and the PDF's;
    the warnings follow apart)."""
    viewers, curve = res["viewers"], res["per_second"]
    said = [f"{len(viewers)} recordings analysed ({len(res['failed'])} could not be read), {len(curve)} seconds.",
            aligned]
    if len(viewers):
        said.append(f"Mean engagement (share of the seconds recorded with the viewer's face found): "
                    f"{share(viewers['engagement'].mean())}.")
    if "attention" in viewers and len(viewers):
        said.append(f"Mean attention (share of the seconds recorded with the viewer facing the screen): "
                    f"{share(viewers['attention'].mean())}.")
    return said


def write_campaign(batch_dir: str, out: str, groups: dict[str, str] | None = None, title: str = "Campaign",
                   offsets: dict[str, float] | None = None, stimulus: str | None = None) -> str:
    """Aggregate a batch job's results (`write_report` on its faces and manifest tables)."""
    store_schemas = schemas(list(EXPRESSIONS))  # the columns of a job that found no face at all
    about = {}
    job_file = os.path.join(batch_dir, "job.json")
    if os.path.exists(job_file):
        with open(job_file) as f:
            job = json.load(f)
        options = job.get("analyzer_options", {})
        read_every = options.get("classify_every", 1)
        about = {"model": options.get("model") or "the embedded model (expression-int8)",
                 "settings": f"every {job.get('every', 1)} frame(s) analysed; face mesh "
                             f"{'on' if options.get('mesh') else 'off'}; full detection every "
                             f"{options.get('detect_every')} frames; a tracked face's expression read "
                             + (f"every {read_every} frames" if read_every > 1 else "in every frame")}
    return write_report(read_table(batch_dir, "faces", store_schemas["faces"]),
                        read_table(batch_dir, "manifest", store_schemas["manifest"]), out, groups, title, offsets,
                        stimulus, about=about)


TABLES_WRITTEN = ("per_second", "peaks", "viewers", "per_second_by_group", "peaks_by_group", "group_sizes",
                  "group_tests")
CHARTS_WRITTEN = ("valence", "expressions", "groups")


def clear_report(out: str) -> None:
    """Remove what an earlier report wrote in `out` (tables, charts, stills, the stimulus copy, the
    HTML and PDF), so a re-run leaves no file of the previous one; the batch folder stays."""
    if not os.path.isdir(out):
        return
    own = {f"{t}.csv" for t in TABLES_WRITTEN} | {f"{c}.png" for c in CHARTS_WRITTEN} | {
        "report.html", "report.pdf", "stimulus.mp4"}
    for name in os.listdir(out):
        if name in own or (name.startswith("moment-") and name.endswith(".png")):
            os.remove(os.path.join(out, name))


def check_stimulus(path: str) -> None:
    """The stimulus exists and is a video that can be read (checked before any work)."""
    from ..analyze.video import VideoReader
    if not os.path.isfile(path):
        raise ValueError(f"the stimulus {path} does not exist")
    try:
        with VideoReader(path, max_frames=1) as reader:
            first = next(iter(reader), None)
    except (ValueError, OSError):
        first = None
    if first is None:
        raise ValueError(f"the stimulus {path} cannot be read as a video")


def write_report(faces: pd.DataFrame, manifest: pd.DataFrame, out: str, groups: dict[str, str] | None = None,
                 title: str = "Campaign", offsets: dict[str, float] | None = None, stimulus: str | None = None,
                 extra_sections: list[tuple[str, str]] | None = None,
                 rows_note: str = "per-face rows in <code>batch/faces</code> (Parquet)",
                 about: dict[str, str] | None = None) -> str:
    """CSV tables, PNG charts, report.html and report.pdf under `out` from the faces and manifest
    tables of a campaign's recordings; returns the report's path. With `stimulus` (the ad), the
    report covers its length, embeds it with a playhead synced to the charts and shows a still at
    each moment. `extra_sections` (heading, HTML) go after the viewers; `rows_note` says where
    the per-face rows are; `about` (model, settings, ...) joins the date, n and alignment on the
    PDF's cover and at the top of the HTML."""
    length = stimulus_info(stimulus)[0] if stimulus else None
    res = aggregate(faces, manifest, groups, offsets, length)
    clear_report(out)
    os.makedirs(out, exist_ok=True)
    for name in TABLES_WRITTEN:
        if name in res:
            res[name].to_csv(os.path.join(out, f"{name}.csv"), index=False)
    viewers, curve, peaks = res["viewers"], res["per_second"], res["peaks"]
    stills: dict[int, str] = {}
    video_tag = ""
    if stimulus:
        src, stills = copy_stimulus(stimulus, out, sorted(set(int(s) for s in peaks["second"])))
        video_tag = (f"<video id='stimulus' src='{src}' controls preload='metadata' style='max-width:640px;"
                     f"width:100%'></video><p>The stimulus ({clock(length, tenths=True)}). Click a chart or a "
                     f"moment to seek it; playing it moves the orange cursor over the charts.</p>")
    charts: dict = {}
    chart_note = ""
    aligned = ("Each recording is aligned so that time 0:00 is where the stimulus starts in it "
               + ("(offsets from the offsets file; recordings it does not name start with the stimulus)"
                  if offsets else "(no offsets given: every recording starts with the stimulus)")
               + (f"; everything after the stimulus's end ({clock(length, tenths=True)}) is cut, and a recording that stops "
                  f"early counts as missing from then on." if length else "."))
    cover = {"date": time.strftime("%Y-%m-%d %H:%M"), "viewers (n)": str(len(viewers)),
             "length": (f"{clock(length, tenths=True)} ({len(curve)} whole seconds)" if length
                        else f"{len(curve)} whole seconds"), **(about or {}), "alignment": aligned}
    overview = overview_sentences(res, aligned)
    try:
        if not curve["viewers"].sum():
            raise PlottingUnavailable("no viewer's face was found, so there is nothing to chart")
        charts = _charts(res, out, title, len(viewers))
        pdf = write_pdf(res, charts, stills, os.path.join(out, "report.pdf"), title, cover,
                        overview + [f"Warning: {w}." for w in res["warnings"]])
    except PlottingUnavailable as exc:
        chart_note = f"<p>No chart: {html.escape(str(exc))}.</p>"
        pdf = None
    intro = (f"<p>{html.escape(' '.join(overview))} Valence runs from -1 (negative) to +1 (positive); the chart "
             f"shows each second's change from the viewers' own average valence (what the moments are computed "
             f"on), with the 95% confidence interval of the mean across viewers, and the absolute valence "
             f"dotted.</p>" if len(viewers) else "<p>No recording could be analysed: a campaign needs videos of "
                                                 "viewers (photos are not aligned in time).</p>")
    if len(viewers) and not (viewers["seconds_with_face"] > 0).any():
        intro += "<p><b>No face was found in any recording</b>, so there is no valence or expression to show.</p>"
    intro += "".join(f"<p class='warn'>Warning: {html.escape(w)}.</p>" for w in res["warnings"])
    moments = "".join(
        f"<div class='moment' data-seek='{p['second'] + 0.5}'>"
        + (png_tag(stills[p['second']], f"the stimulus at {clock(int(p['second']))}") if p["second"] in stills else "")
        + f"<span>{html.escape(describe_peak(p))}</span></div>" for _, p in peaks.iterrows())
    about_table = table(pd.DataFrame({"": list(cover), " ": list(cover.values())}))
    sections = [("Overview", SYNC_STYLE + intro + video_tag + about_table),
                ("Moments that moved the audience",
                 moments or "<p>No moment moved the viewers together beyond chance (95% confidence).</p>"),
                ("Valence over time", _synced(charts["valence"], "valence") if charts else chart_note),
                ("Expressions over time", _synced(charts["expressions"], "expressions") if charts else chart_note)]
    if groups:
        tests = res["group_tests"]
        sections += [("Groups compared",
                      table(res["group_sizes"]) + (_synced(charts["groups"], "groups") if "groups" in charts else "")),
                     ("Differences between groups at each moment (permutation test)",
                      table(tests) if len(tests) else "<p>No moment to compare the groups at.</p>"),
                     ("Moments per group", table(res["peaks_by_group"]) if len(res["peaks_by_group"])
                      else "<p>No group has a moment beyond chance.</p>")]
    sections += [("Viewers", table(viewers_shown(viewers), "{:.2f}")), *(extra_sections or []),
                 ("Recordings that could not be read", table(res["failed"]) if len(res["failed"]) else "<p>None.</p>"),
                 ("Files", "<p><code>per_second.csv</code>, <code>peaks.csv</code>, <code>viewers.csv</code>"
                           + (", <code>per_second_by_group.csv</code>, <code>peaks_by_group.csv</code>, "
                              "<code>group_sizes.csv</code>, <code>group_tests.csv</code>" if groups else "")
                           + (", <code>report.pdf</code> (for slides) and the charts as PNG" if pdf else "")
                           + f"; {rows_note}.</p>" + PLAYHEAD_JS)]
    for w in res["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return write_html(os.path.join(out, "report.html"), f"emoscope campaign: {title}", sections)
