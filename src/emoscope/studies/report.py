"""A study's report: the campaign statistics and report (`emoscope.batch.campaign`) over the
viewers who pass the quality rule, the viewers who do not listed with the reason, and where the
study's curve sits against the other closed studies of the same database (norms)."""

from __future__ import annotations

import html
import json
import os

import numpy as np
import pandas as pd

from ..labels import EXPRESSIONS
from ..presentation import clock
from ..report import table
from .store import MIN_READABLE_SHARE, StudyStore

MIN_NORM_STUDIES = 3  # norms are shown once this many other studies are closed
GROUP_QUESTION = "group"  # a question of this name (or the first question) splits the group comparison


def viewer_name(viewer: int) -> str:
    return f"viewer {viewer}"


def campaign_tables(frames: pd.DataFrame, viewers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's stored frames as a campaign's faces and manifest tables (included viewers only;
    frames without a face stay out, as in a batch job's faces table)."""
    included = viewers[~viewers["excluded"]]
    f = frames[frames["viewer_id"].isin(included["viewer"]) & frames["face"].astype(bool)]
    faces = pd.DataFrame({
        "source": f["viewer_id"].map(viewer_name), "kind": "video", "frame": np.arange(len(f)),
        "time_s": f["ad_time"].astype(float), "track": 1, "x": 0, "y": 0, "w": f["w"], "h": f["h"], "score": 1.0,
        **{c: f[c].astype(float) for c in EXPRESSIONS}, "label": f["label"], "valence": f["valence"],
        "valence_score": f["valence_score"].astype(float), "quality": f["quality"],
        "readable": f["readable"].astype(bool)})
    manifest = pd.DataFrame({"source": included["viewer"].map(viewer_name), "kind": "video", "status": "done",
                             "reason": "", "duration_s": included["watched_s"].astype(float) + 1.0})
    return faces.reset_index(drop=True), manifest


def groups_of(viewers: pd.DataFrame, questions: list[dict]) -> dict[str, str] | None:
    names = [q["name"] for q in questions]
    if not names:
        return None
    question = GROUP_QUESTION if GROUP_QUESTION in names else names[0]
    groups = {viewer_name(v): a.get(question) for v, a in zip(viewers["viewer"], viewers["answers"]) if a.get(question)}
    return groups or None


def curve_summary(per_second: pd.DataFrame) -> tuple[dict, list[dict]]:
    """What a closed study leaves for the norms: headline numbers and its per-second curve."""
    seen = per_second[per_second["viewers"] > 0]
    summary = {"mean_valence": float(seen["valence"].mean()) if len(seen) else None,
               "peak_valence": float(seen["valence"].max()) if len(seen) else None,
               "mean_share_happy": float(seen["share_happy"].mean()) if "share_happy" in seen and len(seen) else None,
               "seconds": int(len(per_second))}
    curve = [{"second": int(r.second), "valence": None if pd.isna(r.valence) else float(r.valence),
              "viewers": int(r.viewers)} for r in per_second.itertuples()]
    return summary, curve


def percentile(value: float, others: list[float]) -> float:
    """The share of `others` below `value` (ties count half), in percent."""
    others = np.asarray([o for o in others if o is not None], float)
    return float(100 * ((others < value).sum() + 0.5 * (others == value).sum()) / len(others))


def norms_section(store: StudyStore, study_id: str, per_second: pd.DataFrame) -> tuple[str, str]:
    others = store.norms(study_id)
    if len(others) < MIN_NORM_STUDIES:
        return ("Against other studies (norms)",
                f"<p>Norms need at least {MIN_NORM_STUDIES} other closed studies in this database; it has "
                f"{len(others)}. Close a study (emoscope study close, or the page) to add it to the norms.</p>")
    summary, curve = curve_summary(per_second)
    rows = []
    for key, label in (("mean_valence", "mean valence"), ("peak_valence", "highest second's valence"),
                       ("mean_share_happy", "mean share of viewers happy")):
        values = [o["summary"].get(key) for o in others]
        if summary.get(key) is None or not any(v is not None for v in values):
            continue
        rows.append({"measure": label, "this study": round(summary[key], 3),
                     "others: 10th percentile": round(float(np.nanpercentile(np.array(values, float), 10)), 3),
                     "others: median": round(float(np.nanmedian(np.array(values, float))), 3),
                     "others: 90th percentile": round(float(np.nanpercentile(np.array(values, float), 90)), 3),
                     "percentile of this study": round(percentile(summary[key], values))})
    band = band_chart(curve, [o["curve"] for o in others])
    return ("Against other studies (norms)",
            f"<p>{len(others)} other closed studies in this database. The band is the 10th to 90th percentile "
            f"of their per-second mean valence, second by second from the start of each ad.</p>"
            + (table(pd.DataFrame(rows)) if rows else "") + band)


def band_chart(curve: list[dict], others: list[list[dict]]) -> str:
    """An inline SVG: this study's per-second valence over the others' 10th-90th percentile band."""
    seconds = len(curve)
    if not seconds:
        return ""
    grid = np.full((len(others), seconds), np.nan)
    for i, c in enumerate(others):
        for p in c[:seconds]:
            if p["valence"] is not None:
                grid[i, p["second"]] = p["valence"]
    covered = ~np.isnan(grid).all(0)  # seconds some other study reaches
    lo, hi = np.full(seconds, np.nan), np.full(seconds, np.nan)
    lo[covered] = np.nanpercentile(grid[:, covered], 10, axis=0)
    hi[covered] = np.nanpercentile(grid[:, covered], 90, axis=0)
    w, h, pad = 640, 220, 40
    x = lambda s: pad + (s + 0.5) / seconds * (w - 2 * pad)  # noqa: E731
    y = lambda v: h - pad - (v + 1) / 2 * (h - 2 * pad)      # noqa: E731
    ok = ~np.isnan(lo) & ~np.isnan(hi)
    band = " ".join(f"{x(s):.1f},{y(hi[s]):.1f}" for s in range(seconds) if ok[s]) + " " + " ".join(
        f"{x(s):.1f},{y(lo[s]):.1f}" for s in reversed(range(seconds)) if ok[s])
    line = " ".join(f"{x(p['second']):.1f},{y(p['valence']):.1f}" for p in curve if p["valence"] is not None)
    ticks = "".join(f"<text x='{pad - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>{v:+.0f}</text>"
                    for v in (-1, 0, 1))
    xt = "".join(f"<text x='{x(s):.1f}' y='{h - pad + 16}' font-size='11' text-anchor='middle'>{clock(s)}</text>"
                 for s in range(0, seconds, max(1, seconds // 8)))
    return (f"<svg viewBox='0 0 {w} {h}' width='100%' style='max-width:{w}px' role='img' "
            f"aria-label='valence against other studies'>"
            f"<polygon points='{band}' fill='#c6dbef'><title>other studies, 10th-90th percentile</title></polygon>"
            f"<polyline points='{line}' fill='none' stroke='#08519c' stroke-width='2'><title>this study</title></polyline>"
            f"<line x1='{pad}' x2='{w - pad}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#999' stroke-dasharray='3'/>"
            f"{ticks}{xt}<text x='{w / 2}' y='{h - 4}' font-size='11' text-anchor='middle'>time in the ad (m:ss)</text>"
            f"<text x='12' y='{h / 2}' font-size='11' transform='rotate(-90 12 {h / 2})' text-anchor='middle'>"
            f"mean valence (-1 to +1)</text></svg>"
            f"<p style='font-size:12px'>Dark line: this study. Light band: other studies (10th-90th percentile).</p>")


def write_study_report(store: StudyStore, study_id: str, out: str) -> str:
    """report.html, report.pdf, the campaign CSVs, frames.csv and viewers.csv of a study under `out`."""
    from ..batch.campaign import write_report
    study = store.get_study(study_id)
    viewers = store.viewer_table(study_id)
    frames = store.frames(study_id)
    os.makedirs(out, exist_ok=True)
    ad, ad_name, _ = store.ad(study_id)
    stimulus = os.path.join(out, "ad" + (os.path.splitext(ad_name)[1].lower() or ".mp4"))
    with open(stimulus, "wb") as f:
        f.write(ad)
    faces, manifest = campaign_tables(frames, viewers)
    frames.to_csv(os.path.join(out, "frames.csv"), index=False)
    try:
        frames.to_parquet(os.path.join(out, "frames.parquet"), index=False)
    except ImportError:  # pyarrow is the batch extra; frames.csv holds the same table
        pass
    shown = viewers.assign(answers=viewers["answers"].map(json.dumps))
    shown.to_csv(os.path.join(out, "viewers_all.csv"), index=False)
    excluded = viewers[viewers["excluded"]]
    counts = study["viewers"]
    status = (f"<p>{counts['started']} viewers started, {counts['completed']} finished the ad; "
              f"<b>n = {counts['included']}</b> in the statistics. A viewer counts when their face was found and "
              f"readable in at least {MIN_READABLE_SHARE:.0%} of the ad's seconds; {counts['excluded']} did not:</p>"
              + (table(excluded[["viewer", "status", "watched_s", "readable_share", "reason"]])
                 if len(excluded) else "<p>none excluded.</p>"))
    per_second_path = os.path.join(out, "per_second.csv")
    path = write_report(faces, manifest, out, groups_of(viewers[~viewers["excluded"]], study["questions"]), study["name"],
                        stimulus=stimulus, extra_sections=[("Viewers who took part", status)],
                        rows_note="every viewer's frames in <code>frames.csv</code>, every viewer in "
                                  "<code>viewers_all.csv</code>",
                        about={"model": "the server's model (emoscope serve --model; default the embedded one)",
                               "settings": f"viewers' browsers sent camera frames at up to 5 per second; a viewer "
                                           f"counts when readable in {MIN_READABLE_SHARE:.0%} of the ad",
                               "viewers started / excluded": f"{counts['started']} / {counts['excluded']}"})
    if os.path.exists(per_second_path):
        heading, body = norms_section(store, study_id, pd.read_csv(per_second_path))
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = text.replace("</body>", f"<h2>{html.escape(heading)}</h2>\n{body}\n</body>", 1)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def close_study(store: StudyStore, study_id: str, out: str) -> str:
    """Close a study: its report is written once more and its curve joins the norms."""
    path = write_study_report(store, study_id, out)
    summary, curve = curve_summary(pd.read_csv(os.path.join(out, "per_second.csv")))
    store.close_study(study_id, summary, curve)
    return path
