"""Agreement between emoscope and human coders, frame by frame and event by event.

The frames compared are emoscope's analysed frames of one person (by default the largest face of
each frame: the participant in front of the camera). At each frame every coder's label is the
segment covering it. Frames where emoscope found no face, or found it unreadable (the fit flag),
and frames a coder left uncoded are counted apart, never as disagreements. Statistics come from
scikit-learn (Cohen's kappa, precision / recall / F1, the confusion matrix) and `krippendorff`
(alpha over two or more coders)."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..labels import EXPRESSIONS, VALENCE_LABELS, class_valence
from ..presentation import EXPRESSION_COLORS, VALENCE_COLORS, clock
from .segments import UNREADABLE, CodingError, frame_labels, frame_step, labels_at, runs

QUALITY_BINS = ((0.5, 0.75), (0.75, 1.01))  # agreement by fit quality: [0.5, 0.75), [0.75, 1]


def _stats():
    try:
        import krippendorff
        from sklearn import metrics
    except ImportError:
        raise CodingError("the agreement statistics need scikit-learn and krippendorff: "
                          "pip install 'emoscope[research]'") from None
    return metrics, krippendorff


@dataclass
class Alignment:
    """Labels at emoscope's analysed frames of one person: `emoscope` (None: no face there,
    'unreadable': the fit flag), one array per human coder (None: uncoded)."""

    times: np.ndarray
    emoscope: np.ndarray
    humans: dict[str, np.ndarray]
    quality: np.ndarray
    step: float
    person: str
    valence_only: bool = False
    emoscope_valence: np.ndarray = field(default_factory=lambda: np.zeros(0))


def choose_person(frames: pd.DataFrame, person: str | None) -> pd.DataFrame:
    """The rows of one person: `person` (a face_id), else the largest face of every frame."""
    faces = frames[frames["success"] == 1]
    if person is not None:
        rows = faces[faces["face_id"].astype("Int64").astype(str) == str(person)]
        if rows.empty:
            ids = sorted(faces["face_id"].dropna().astype(int).unique().tolist())
            raise CodingError(f"no person {person} in the frame table (persons: {', '.join(map(str, ids[:20]))})")
        return rows
    area = faces["w"] * faces["h"]
    return faces.loc[area.groupby(faces["frame"]).idxmax()] if len(faces) else faces


def align(frames: pd.DataFrame, humans: dict[str, pd.DataFrame], person: str | None = None) -> Alignment:
    times = np.unique(frames["timestamp"].to_numpy(float))
    rows = choose_person(frames, person)
    fl = frame_labels(rows).set_index("timestamp")
    valence = frame_labels(rows, "valence").set_index("timestamp")["label"] if "valence" in rows else None
    emo = np.array([fl["label"].get(t) for t in times], dtype=object)
    quality = np.array([fl["quality"].get(t, np.nan) for t in times], float)
    coded = {name: labels_at(seg, times) for name, seg in humans.items()}
    used = {v for arr in coded.values() for v in arr if v is not None and v != UNREADABLE}
    valence_only = bool(used) and used <= set(VALENCE_LABELS) and not used & {"happy", "sad", "angry", "fear",
                                                                               "disgust", "surprise"}
    if valence_only:
        emo = np.array([None if v is None else v if v == UNREADABLE else
                        (valence.get(t) if valence is not None else class_valence(v)) for v, t in zip(emo, times)],
                       dtype=object)
    ev = np.array([None if v is None or v == UNREADABLE else class_valence(v) if v in EXPRESSIONS else v
                   for v in emo], dtype=object)
    return Alignment(times, emo, coded, quality, frame_step(frames),
                     "largest face" if person is None else str(person), valence_only, ev)


def _pair_stats(a: np.ndarray, b: np.ndarray, labels: list[str]) -> dict:
    """Cohen's kappa and percent agreement of two label arrays (None where nothing is compared
    or kappa is undefined: one label throughout)."""
    metrics, _ = _stats()
    if len(a) == 0:
        return {"kappa": None, "agreement": None}
    kappa = metrics.cohen_kappa_score(a, b, labels=labels)
    return {"kappa": None if np.isnan(kappa) else round(float(kappa), 4), "agreement": round(float(np.mean(a == b)), 4)}


def events(reference: np.ndarray, other: np.ndarray, times: np.ndarray, step: float, tolerance: int) -> pd.DataFrame:
    """Event-level timing: every run of a label in `reference` matched to the run of the same label
    in `other` that overlaps it most (or, with none overlapping, starts nearest within
    `tolerance` frames); onset and offset differences in frames (positive: `other` later)."""
    def label_runs(arr):
        ok = np.array([v is not None and v != UNREADABLE for v in arr])
        return [r for r in runs(times[ok], arr[ok].astype(str), step)]
    ref, oth = label_runs(reference), label_runs(other)
    rows = []
    for s, e, lab in ref:
        same = [(os_, oe) for os_, oe, ol in oth if ol == lab]
        overlap = [max(0.0, min(e, oe) - max(s, os_)) for os_, oe in same]
        best = None
        if overlap and max(overlap) > 0:
            best = same[int(np.argmax(overlap))]
        elif same:
            near = min(same, key=lambda r: abs(r[0] - s))
            best = near if abs(near[0] - s) <= tolerance * step else None
        onset = round((best[0] - s) / step) if best else None
        offset = round((best[1] - e) / step) if best else None
        rows.append({"label": lab, "start_s": s, "end_s": e, "matched": best is not None,
                     "onset_frames": onset, "offset_frames": offset})
    return pd.DataFrame(rows, columns=["label", "start_s", "end_s", "matched", "onset_frames", "offset_frames"])


def event_summary(ev: pd.DataFrame, tolerance: int) -> dict:
    out = {}
    for lab, g in ev.groupby("label"):
        m = g[g["matched"]]
        on = m["onset_frames"].astype(float)
        off = m["offset_frames"].astype(float)
        out[lab] = {"events": int(len(g)), "matched": int(len(m)),
                    "median_onset_frames": None if m.empty else float(on.median()),
                    "median_offset_frames": None if m.empty else float(off.median()),
                    "onset_within_tolerance": None if m.empty else round(float((on.abs() <= tolerance).mean()), 4)}
    return out


def agreement(al: Alignment, tolerance: int = 5) -> dict:
    """The summary of an alignment: emoscope against the first human coder (kappa, agreement,
    per class, confusion, valence, events, by quality), the frames counted apart, and with
    two or more coders Krippendorff's alpha among them and with emoscope."""
    metrics, krippendorff = _stats()
    name, human = next(iter(al.humans.items()))
    has_face = np.array([v is not None for v in al.emoscope])
    readable = np.array([v is not None and v != UNREADABLE for v in al.emoscope])
    coded = np.array([v is not None for v in human])
    both = readable & coded
    e, h = al.emoscope[both].astype(str), human[both].astype(str)
    labels = sorted(set(e) | set(h), key=lambda c: (VALENCE_LABELS + EXPRESSIONS).index(c)
                    if c in VALENCE_LABELS + EXPRESSIONS else 99)
    out = {"person": al.person, "human": name, "coding": "valence" if al.valence_only else "expression",
           "frames": int(len(al.times)), "compared": int(both.sum()), "frame_step_s": round(al.step, 4),
           "no_face_frames": int((~has_face & coded).sum()), "unreadable_frames": int((has_face & ~readable & coded).sum()),
           "uncoded_frames": int((~coded).sum()), **_pair_stats(h, e, labels)}
    if both.any():
        p, r, f1, n = metrics.precision_recall_fscore_support(h, e, labels=labels, zero_division=0)
        out["per_class"] = {c: {"human_frames": int(n[i]), "emoscope_frames": int((e == c).sum()),
                                "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                                "f1": round(float(f1[i]), 4),
                                "kappa": round(float(metrics.cohen_kappa_score(h == c, e == c)), 4)
                                if len(set(h == c) | set(e == c)) > 1 else None}
                            for i, c in enumerate(labels)}
        out["confusion"] = {"labels": labels, "rows_human_cols_emoscope":
                            metrics.confusion_matrix(h, e, labels=labels).tolist()}
        out["macro_f1"] = round(float(np.mean(f1[n > 0])), 4) if (n > 0).any() else None
    if not al.valence_only:
        hv = np.array([class_valence(v) if v in EXPRESSIONS else v for v in h], dtype=object).astype(str)
        out["valence"] = {"frames": int(both.sum()),
                          **_pair_stats(hv, al.emoscope_valence[both].astype(str), list(VALENCE_LABELS))}
    ev = events(human, al.emoscope, al.times, al.step, tolerance)
    matched = ev[ev["matched"]]
    out["events"] = {"tolerance_frames": tolerance, "events": int(len(ev)), "matched": int(len(matched)),
                     "median_onset_frames": float(matched["onset_frames"].median()) if len(matched) else None,
                     "median_offset_frames": float(matched["offset_frames"].median()) if len(matched) else None,
                     "per_class": event_summary(ev, tolerance)}
    q = al.quality[both]
    out["by_quality"] = [{"quality": f"{lo:.2f}-{min(hi, 1):.2f}", "frames": int(((q >= lo) & (q < hi)).sum()),
                          **_pair_stats(h[(q >= lo) & (q < hi)], e[(q >= lo) & (q < hi)], labels)}
                         for lo, hi in QUALITY_BINS]
    if len(al.humans) > 1:
        out["coders"] = coders_table(al)
    return out


def coders_table(al: Alignment) -> dict:
    """Krippendorff's alpha (nominal) over the human coders, and with emoscope as one more coder;
    each coder's mean Cohen's kappa with the others (emoscope placed among them)."""
    metrics, krippendorff = _stats()
    emo = np.array([v if v is not None and v != UNREADABLE else None for v in al.emoscope], dtype=object)
    coders = {**al.humans, "emoscope": emo}
    vocab = sorted({v for arr in coders.values() for v in arr if v is not None})
    code = {v: i for i, v in enumerate(vocab)}

    def matrix(names):
        return np.array([[code[v] if v is not None else np.nan for v in coders[n]] for n in names], float)

    humans = list(al.humans)
    alpha_h = krippendorff.alpha(reliability_data=matrix(humans), level_of_measurement="nominal")
    alpha_all = krippendorff.alpha(reliability_data=matrix(humans + ["emoscope"]), level_of_measurement="nominal")
    mean_kappa = {}
    for a in coders:
        ks = []
        for b in coders:
            if a == b:
                continue
            ok = np.array([x is not None and y is not None for x, y in zip(coders[a], coders[b])])
            if ok.sum() > 1:
                ks.append(metrics.cohen_kappa_score(coders[a][ok].astype(str), coders[b][ok].astype(str)))
        mean_kappa[a] = round(float(np.nanmean(ks)), 4) if ks else None
    return {"alpha_humans": round(float(alpha_h), 4), "alpha_with_emoscope": round(float(alpha_all), 4),
            "mean_kappa_with_others": mean_kappa}


# -- the HTML report ------------------------------------------------------------------------------
def time_strip(al: Alignment, colors: dict[str, str], width: int = 960) -> str:
    """An SVG strip: each coder's labels over time, one row each, emoscope last; disagreements
    marked beneath in red, unreadable and uncoded frames in grey."""
    t0, t1 = float(al.times.min()), float(al.times.max() + al.step)
    x = lambda t: 110 + (t - t0) / max(t1 - t0, 1e-9) * (width - 120)  # noqa: E731
    rows = list(al.humans.items()) + [("emoscope", al.emoscope)]
    h = 26
    parts = []
    for i, (name, labels) in enumerate(rows):
        y = 10 + i * h
        parts.append(f"<text x='4' y='{y + 15}' font-size='12'>{html.escape(name)}</text>")
        for s, e, lab in runs(al.times, np.array([str(v) if v is not None else "" for v in labels], object), al.step):
            fill = colors.get(lab, "#ddd") if lab and lab != UNREADABLE else "#bbb" if lab else "#f2f2f2"
            parts.append(f"<rect x='{x(s):.1f}' y='{y}' width='{max(x(e) - x(s), 0.5):.1f}' height='{h - 6}' "
                         f"fill='{fill}'><title>{html.escape(lab or 'uncoded')} {clock(s, tenths=True)}-{clock(e, tenths=True)}</title></rect>")
    y = 10 + len(rows) * h
    first = next(iter(al.humans.values()))
    for t, a, b in zip(al.times, first, al.emoscope):
        if a is not None and b is not None and b != UNREADABLE and str(a) != str(b):
            parts.append(f"<rect x='{x(t):.1f}' y='{y}' width='{max(x(t + al.step) - x(t), 0.5):.1f}' height='8' fill='#d62728'/>")
    parts.append(f"<text x='4' y='{y + 8}' font-size='11'>disagree</text>")
    for k in range(6):
        t = t0 + (t1 - t0) * k / 5
        parts.append(f"<text x='{x(t):.1f}' y='{y + 26}' font-size='11' text-anchor='middle'>{clock(t, tenths=True)}</text>")
    return (f"<div style='overflow-x:auto'><svg viewBox='0 0 {width} {y + 32}' width='100%' role='img' "
            f"aria-label='codings over time'>{''.join(parts)}</svg></div>")


def write_report(summary: dict, al: Alignment, path: str) -> str:
    from ..report import table, write_html
    colors = {**EXPRESSION_COLORS, **{k: v for k, v in VALENCE_COLORS.items() if k != "neutral"}}
    head = pd.DataFrame([{
        "frames compared": summary["compared"], "Cohen's kappa": summary.get("kappa"),
        "agreement": summary.get("agreement"), "macro-F1": summary.get("macro_f1"),
        "no face (apart)": summary["no_face_frames"], "unreadable (apart)": summary["unreadable_frames"],
        "uncoded (apart)": summary["uncoded_frames"]}])
    sections = [("Overall", f"<p>emoscope against <b>{html.escape(summary['human'])}</b> on person "
                            f"{html.escape(summary['person'])}, {summary['coding']} labels, one frame = "
                            f"{summary['frame_step_s']:.3f} s. Frames without a face or unreadable are counted "
                            f"apart, never as disagreements.</p>" + table(head)),
                ("Time strip", time_strip(al, colors))]
    if summary.get("per_class"):
        pc = pd.DataFrame([{"label": c, **v} for c, v in summary["per_class"].items()])
        sections.append(("Per class (the human coder as reference)", table(pc)))
        conf = summary["confusion"]
        cm = pd.DataFrame(conf["rows_human_cols_emoscope"], columns=[f"emoscope: {c}" for c in conf["labels"]])
        cm.insert(0, "human", conf["labels"])
        sections.append(("Confusion matrix (frames)", table(cm)))
    if summary.get("valence"):
        sections.append(("Valence (negative / neutral / positive)", table(pd.DataFrame([summary["valence"]]))))
    ev = pd.DataFrame([{"label": c, **v} for c, v in summary["events"]["per_class"].items()])
    sections.append((f"Events: onset and offset (frames; positive = emoscope later; tolerance "
                     f"{summary['events']['tolerance_frames']} frames)", table(ev) if len(ev) else "<p>no events</p>"))
    sections.append(("Agreement by fit quality", table(pd.DataFrame(summary["by_quality"]))))
    if summary.get("coders"):
        c = summary["coders"]
        mk = pd.DataFrame([{"coder": k, "mean kappa with the others": v} for k, v in c["mean_kappa_with_others"].items()])
        sections.append(("Among the coders", f"<p>Krippendorff's alpha (nominal): humans {c['alpha_humans']:.3f}; "
                                             f"with emoscope {c['alpha_with_emoscope']:.3f}.</p>" + table(mk)))
    sections.append(("Summary (JSON)", f"<pre style='white-space:pre-wrap'>{html.escape(json.dumps(summary, indent=1))}</pre>"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_html(path, "Agreement with human coding", sections)
