"""Ad tests: recordings of many viewers watching the same stimulus, aligned on time from the start
of each recording and aggregated second by second: how many viewers show a face, their mean
valence with a 95% confidence interval, the share of each expression, the moments that move the
audience (peaks that hold across viewers), engagement, and the same per group of viewers."""

from __future__ import annotations

import csv
import html
import math
import os

import numpy as np
import pandas as pd

from ..report import PlottingUnavailable, png_tag, table, write_html
from ..labels import EXPRESSIONS
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


def viewer_seconds(faces: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per viewer (recording) per second in which a face was found. The viewer is the
    largest face of each analysed frame; a second's valence and probabilities are the means over
    its frames, its label the most probable mean class."""
    v = faces[faces["kind"] == "video"]
    if v.empty:
        return pd.DataFrame(columns=["viewer", "second", *classes, "valence", "label"])
    v = v.assign(area=v["w"] * v["h"])
    v = v.loc[v.groupby(["source", "frame"])["area"].idxmax()]
    v = v.assign(second=np.floor(v["time_s"]).astype(int))
    out = v.groupby(["source", "second"])[[*classes, "valence_score"]].mean().reset_index()
    out["label"] = out[classes].idxmax(axis=1)
    return out.rename(columns={"source": "viewer", "valence_score": "valence"})


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


def viewer_table(vs: pd.DataFrame, durations: pd.Series, groups: dict[str, str] | None) -> pd.DataFrame:
    """Per viewer: seconds recorded and with a face (engagement = their ratio), mean valence,
    dominant expression, the second of their highest and lowest valence, and their group."""
    rows = []
    for viewer, duration in durations.items():
        g = vs[vs["viewer"] == viewer]
        recorded = max(1, math.ceil(duration))
        rows.append({"viewer": viewer, "group": group_of(viewer, groups) if groups else None,
                     "seconds": recorded, "seconds_with_face": len(g), "engagement": len(g) / recorded,
                     "mean_valence": g["valence"].mean() if len(g) else float("nan"),
                     "dominant": g["label"].mode().iat[0] if len(g) else None,
                     "best_second": int(g.loc[g["valence"].idxmax(), "second"]) if len(g) else None,
                     "worst_second": int(g.loc[g["valence"].idxmin(), "second"]) if len(g) else None})
    out = pd.DataFrame(rows, columns=["viewer", "group", "seconds", "seconds_with_face", "engagement",
                                      "mean_valence", "dominant", "best_second", "worst_second"])
    return out if groups else out.drop(columns=["group"])


def read_groups(path: str) -> dict[str, str]:
    """video → group from a CSV with columns video,group (video: a path, file name or stem)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"video", "group"} <= {c.strip() for c in reader.fieldnames}:
                raise ValueError(f"{path}: needs the columns video,group")
            return {r["video"].strip(): (r.get("group") or "").strip() for r in reader if r.get("video")}
    except (UnicodeDecodeError, csv.Error):
        raise ValueError(f"{path} is not a text CSV file (UTF-8) with the columns video,group") from None
    except OSError as exc:
        raise ValueError(f"cannot read the groups file {path} ({exc.strerror or 'input/output error'})") from None


def group_of(source: str, groups: dict[str, str]) -> str:
    for key in (source, os.path.basename(source), os.path.splitext(os.path.basename(source))[0]):
        if key in groups:
            return groups[key]
    return "(no group)"


def aggregate(faces: pd.DataFrame, manifest: pd.DataFrame, groups: dict[str, str] | None = None) -> dict:
    """The campaign's tables from a batch job's faces and manifest: per_second, peaks, viewers, and
    with `groups` per_second and peaks for each group (a `group` column)."""
    classes = prob_columns(faces)
    done = manifest[(manifest["kind"] == "video") & (manifest["status"] == "done")]
    durations = done.set_index("source")["duration_s"]
    vs = viewer_seconds(faces[faces["source"].isin(durations.index)], classes)
    seconds = int(math.ceil(durations.max())) if len(durations) else 0

    def analyse(part: pd.DataFrame, n_viewers: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        curve = per_second(part, classes, seconds)
        return curve, find_peaks(curve, max(2, math.ceil(n_viewers / 2)))

    curve, peaks = analyse(vs, len(durations))
    out = {"per_second": curve, "peaks": peaks, "viewers": viewer_table(vs, durations, groups), "classes": classes,
           "failed": manifest[manifest["status"] == "failed"][["source", "reason"]]}
    if groups:
        by_group = {s: group_of(s, groups) for s in durations.index}
        curves, peak_tables = [], []
        for name in sorted(set(by_group.values())):
            members = [s for s, g in by_group.items() if g == name]
            c, p = analyse(vs[vs["viewer"].isin(members)], len(members))
            curves.append(c.assign(group=name))
            peak_tables.append(p.assign(group=name))
        out["per_second_by_group"] = pd.concat(curves, ignore_index=True)
        out["peaks_by_group"] = pd.concat(peak_tables, ignore_index=True)
    return out


def clock(second: int) -> str:
    return f"{second // 60}:{second % 60:02d}"


def describe_peak(p) -> str:
    direction = "rose above" if p["kind"] == "positive" else "fell below"
    return (f"At {clock(p['second'])}, valence {direction} the viewers' own average by {abs(p['change']):.2f} "
            f"(95% CI {p['change_ci_low']:+.2f} to {p['change_ci_high']:+.2f}); {p['viewers_agreeing']:.0%} of "
            f"{p['viewers']} viewers moved that way.")


def _charts(res: dict, out: str) -> dict[str, str]:
    """PNG charts: valence with its CI and the peaks, expression shares, groups compared."""
    from ..analyze.annotate import CLASS_COLORS_RGB
    from ..report import pyplot
    plt = pyplot()
    curve, paths = res["per_second"], {}
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.fill_between(curve["second"], curve["ci_low"], curve["ci_high"], color="#4c72b0", alpha=0.25, label="95% CI")
    ax.plot(curve["second"], curve["valence"], color="#4c72b0", lw=1.8, label="mean valence")
    for _, p in res["peaks"].iterrows():
        ax.axvline(p["second"], color="#2a9d3a" if p["kind"] == "positive" else "#c0392b", ls="--", lw=1)
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("seconds from the start of the recording")
    ax.set_ylabel("valence")
    ax2 = ax.twinx()
    ax2.step(curve["second"], curve["viewers"], where="post", color="gray", lw=0.8, alpha=0.6, label="viewers")
    ax2.set_ylabel("viewers with a face")
    ax2.set_ylim(0, max(1, curve["viewers"].max()) * 1.1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    paths["valence"] = os.path.join(out, "valence.png")
    fig.savefig(paths["valence"], dpi=110)
    plt.close(fig)

    classes = res["classes"]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    shares = curve[[f"share_{c}" for c in classes]].fillna(0).to_numpy().T
    colors = [np.array(CLASS_COLORS_RGB.get(c, (128, 128, 128))) / 255 for c in classes]
    ax.stackplot(curve["second"], *shares, labels=classes, colors=colors, alpha=0.85)
    ax.set_ylim(0, 1)
    ax.set_xlabel("seconds")
    ax.set_ylabel("share of viewers")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    paths["expressions"] = os.path.join(out, "expressions.png")
    fig.savefig(paths["expressions"], dpi=110)
    plt.close(fig)

    if "per_second_by_group" in res:
        fig, ax = plt.subplots(figsize=(10, 3.6))
        for name, g in res["per_second_by_group"].groupby("group"):
            line = ax.plot(g["second"], g["valence"], lw=1.6, label=str(name))[0]
            ax.fill_between(g["second"], g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.15)
        ax.axhline(0, color="gray", lw=0.6)
        ax.set_ylim(-1, 1)
        ax.set_xlabel("seconds")
        ax.set_ylabel("mean valence")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths["groups"] = os.path.join(out, "groups.png")
        fig.savefig(paths["groups"], dpi=110)
        plt.close(fig)
    return paths


def write_campaign(batch_dir: str, out: str, groups: dict[str, str] | None = None, title: str = "Campaign") -> str:
    """Aggregate a batch job's results into CSV tables, PNG charts and report.html under `out`;
    returns the report's path."""
    store_schemas = schemas(list(EXPRESSIONS))  # the columns of a job that found no face at all
    res = aggregate(read_table(batch_dir, "faces", store_schemas["faces"]),
                    read_table(batch_dir, "manifest", store_schemas["manifest"]), groups)
    os.makedirs(out, exist_ok=True)
    for name in ("per_second", "peaks", "viewers", "per_second_by_group", "peaks_by_group"):
        if name in res:
            res[name].to_csv(os.path.join(out, f"{name}.csv"), index=False)
    try:
        if not res["per_second"]["viewers"].sum():
            raise PlottingUnavailable("no viewer's face was found, so there is nothing to chart")
        charts = {k: png_tag(p, k) for k, p in _charts(res, out).items()}
    except PlottingUnavailable as exc:
        charts = {k: f"<p>No chart: {html.escape(str(exc))}.</p>" for k in ("valence", "expressions", "groups")}
    viewers, curve = res["viewers"], res["per_second"]
    intro = (f"<p>{len(viewers)} recordings analysed ({len(res['failed'])} could not be read), "
             f"{len(curve)} seconds aligned from the start of each recording. Mean engagement (share of seconds "
             f"with the viewer's face found): {viewers['engagement'].mean():.0%}. Valence runs from -1 (negative) "
             f"to +1 (positive); the band is the 95% confidence interval of the mean across viewers.</p>"
             if len(viewers) else "<p>No recording could be analysed: a campaign needs videos of viewers "
                                   "(photos are not aligned in time).</p>")
    if len(viewers) and not (viewers["seconds_with_face"] > 0).any():
        intro += "<p><b>No face was found in any recording</b>, so there is no valence or expression to show.</p>"
    moments = "".join(f"<li>{html.escape(describe_peak(p))}</li>" for _, p in res["peaks"].iterrows())
    sections = [
        ("Overview", intro),
        ("Moments that moved the audience",
         f"<ul>{moments}</ul>" if moments else "<p>No moment moved the viewers together beyond chance "
                                               "(95% confidence).</p>"),
        ("Valence over time", charts["valence"]),
        ("Expressions over time", charts["expressions"]),
    ]
    if groups:
        rows = res["peaks_by_group"]
        sections += [("Groups compared", charts.get("groups", "")),
                     ("Moments per group", table(rows) if len(rows) else "<p>No group has a moment beyond chance.</p>")]
    sections += [("Viewers", table(viewers)),
                 ("Recordings that could not be read", table(res["failed"]) if len(res["failed"]) else "<p>None.</p>"),
                 ("Files", "<p><code>per_second.csv</code>, <code>peaks.csv</code>, <code>viewers.csv</code>"
                           + (", <code>per_second_by_group.csv</code>, <code>peaks_by_group.csv</code>" if groups else "")
                           + "; per-face rows in <code>batch/faces</code> (Parquet).</p>")]
    return write_html(os.path.join(out, "report.html"), f"emoscope campaign: {title}", sections)
