"""What reading a tracked face's expression only every N-th frame (`Analyzer(classify_every=N)`,
the last reading carried in between) changes, against reading it in every frame: on the sample
clip (cuts, small, turned and dim faces) and on the one-face benchmark video, per row (a face in a
frame; the tracks are the same whatever N) the share of rows whose smoothed main expression and
valence agree (also over readable rows) and the mean and largest difference of the smoothed
probabilities, and per person (summaries) the share with the same dominant expression and the
largest difference in mean valence; on the clip the share of faces the classifier read and the
0:07-0:09 audience's negative persons (`clip_audience.py`). FPS on the one-face video (fastest of
`--repeats`). JSON on stdout.

Usage: python experiments/classify_every.py [--model ONNX] [--every 1 2 3] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from emoscope import Analyzer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from bench_inference import SHARED, write_video  # noqa: E402
from clip_audience import NEGATIVE, audience  # noqa: E402


def compare(base, other, classes: list[str]) -> dict:
    """Row by row (frame, track) agreement of two timelines of the same video."""
    a = base.set_index(["frame", "track"])
    b = other.set_index(["frame", "track"]).reindex(a.index)
    diff = np.abs(a[classes].to_numpy() - b[classes].to_numpy())
    readable = a["readable"].to_numpy(bool)
    same = (a["label"] == b["label"]).to_numpy()
    return {"rows": len(a), "rows_matched": int(b["label"].notna().sum()),
            "label_agreement": round(float(same.mean()), 4),
            "label_agreement_readable": round(float(same[readable].mean()), 4),
            "valence_agreement": round(float((a["valence"] == b["valence"]).mean()), 4),
            "prob_diff_mean": round(float(np.nanmean(diff)), 4), "prob_diff_max": round(float(np.nanmax(diff)), 4)}


def persons(base, other) -> dict:
    """Per-person summaries of two timelines of the same video: the share of persons with the same
    dominant expression, and the largest difference in a person's mean valence."""
    a, b = base.summary().set_index("track"), other.summary().set_index("track").reindex(base.summary()["track"])
    return {"persons": len(a), "dominant_agreement": round(float((a["dominant"] == b["dominant"]).mean()), 4),
            "mean_valence_diff_max": round(float(np.nanmax(np.abs(a["mean_valence"] - b["mean_valence"]))), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="ONNX file (default: the shipped model)")
    p.add_argument("--every", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    clip = os.path.join(SHARED, "samples", "facerec_short_hamilton_clip.mp4")
    out = {"model": args.model or "shipped", "threads": args.threads, "by_classify_every": {}}
    with tempfile.TemporaryDirectory() as tmp:
        one_face = write_video(os.path.join(tmp, "one_face.avi"))
        base = {}
        for n in args.every:
            analyzer = Analyzer(args.model, threads=args.threads, classify_every=n)
            faces = {"read": 0, "all": 0}

            def count(_index, _time, _frame, found) -> None:
                faces["read"] += sum(bool(f.classified) for f in found)
                faces["all"] += len(found)
            tls = {"clip": analyzer.analyze_video(clip, progress=False, on_frame=count),
                   "one_face": analyzer.analyze_video(one_face, progress=False)}
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                frames = sum(1 for _ in analyzer.iter_video(one_face, progress=False))
                best = min(best, time.perf_counter() - t)
            row = {"fps_one_face": round(frames / best, 1), "clip_negative_audience":
                   sum(p["main"] in NEGATIVE for p in audience(tls["clip"])),
                   "clip_faces_read_share": round(faces["read"] / max(faces["all"], 1), 4)}
            base = base or tls
            for name, tl in tls.items():
                row[name] = {**compare(base[name], tl, analyzer.classes), **persons(base[name], tl)}
            out["by_classify_every"][n] = row
            print(n, json.dumps(row), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
