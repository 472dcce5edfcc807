"""The reference case for reading real footage: the sample clip's audience at 0:07-0:09, laughing,
dim and half in profile. Per person seen there: frames, how many the fit flag found readable,
the main expression over the readable ones (or 'unreadable'), and mean valence. JSON on stdout.

Usage: python experiments/clip_audience.py [--model ONNX] [--start 7] [--end 9.2]
"""

from __future__ import annotations

import argparse
import json
import os

from emoscope import Analyzer

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
NEGATIVE = ("angry", "disgust", "sad")


def audience(tl, start: float = 7.0, end: float = 9.2) -> list[dict]:
    """Each person of a timeline of the clip seen between `start` and `end` s: frames, unreadable
    frames, main expression and mean valence."""
    people = tl[(tl["time"] >= start) & (tl["time"] <= end)].summary()
    return [{"person": int(r.track), "frames": int(r.frames), "unreadable_frames": int(r.unreadable_frames),
             "main": r.dominant, "mean_valence": None if r.dominant == "unreadable" else round(float(r.mean_valence), 3)}
            for r in people.itertuples()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="ONNX file (default: the shipped model)")
    p.add_argument("--start", type=float, default=7.0)
    p.add_argument("--end", type=float, default=9.2)
    args = p.parse_args()
    analyzer = Analyzer(args.model)
    tl = analyzer.analyze_video(os.path.join(SHARED, "samples", "facerec_short_hamilton_clip.mp4"), progress=False)
    rows = audience(tl, args.start, args.end)
    print(json.dumps({"model": args.model or "shipped", "window_s": [args.start, args.end], "persons": rows,
                      "negative_main": sum(r["main"] in NEGATIVE for r in rows),
                      "unreadable_persons": sum(r["main"] == "unreadable" for r in rows)}, indent=1))


if __name__ == "__main__":
    main()
