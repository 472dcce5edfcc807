"""How well the fit flag's head turn, estimated from YuNet's five points when the face mesh is off,
follows the face mesh's own head pose: every face of the web_faces photos (train and val parts;
the test part stays unseen) and of gender_faces, the largest face of each photo, mirrored too.
For each face: the mesh's yaw (the reference, where the mesh is sure: presence >= 0.9), the two
ratios the estimate reads (the nose's offset from the eyes' midpoint in eye distances, and the
eyes' distance in box widths) and the estimate `emoscope.analyze.quality.yaw_from_points` makes of
them. Prints the error by band of true yaw (the estimate in use, and the nose reading alone), the
`NOSE_OFFSET_AT_90` that gives the nose reading the lowest mean error over the bands (each band
counts alike: the turned faces the flag is for are few), `EYES_IN_BOX_FRONTAL` (the median eye span
of faces within 15 degrees), and, per limit on the estimate, how its flag agrees with the mesh's
flag (`LANDMARK_YAW_LIMIT`: the best F1). Writes
experiments/results/fit-flag/yaw-landmarks.{csv,json}.

Usage: python experiments/yaw_from_landmarks.py [--limit 4000] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile

import cv2
import numpy as np
import pandas as pd

from emoscope.analyze.quality import (EYES_IN_BOX_FRONTAL, LANDMARK_YAW_LIMIT, LIMITS, NOSE_OFFSET_AT_90,
                                      pose_from_landmarks, yaw_from_offset, yaw_from_points)
from emoscope.images import decode_image
from emoscope.runtime.detector import YuNetDetector
from emoscope.runtime.landmarker import Landmarker

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
SPLIT = os.path.join(os.path.dirname(__file__), "..", "configs", "splits", "web-faces.csv")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fit-flag")
BANDS = (0, 15, 30, 45, 60, 90)


def photos(limit: int) -> list[tuple[str, str]]:
    """(zip, member) of the photos used: web_faces outside its test part, and gender_faces."""
    split = pd.read_csv(SPLIT, comment="#", header=None, names=["path", "split"])
    test = set(split.loc[split["split"] == "test", "path"])
    found = []
    for name in ("web_faces.zip", "gender_faces.zip"):
        path = os.path.join(SHARED, "datasets", name)
        with zipfile.ZipFile(path) as z:
            found += [(path, n) for n in z.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")) and n not in test]
    pick = np.random.default_rng(0).permutation(len(found))[:limit]
    return [found[i] for i in sorted(pick)]


def measure(limit: int) -> pd.DataFrame:
    detector = YuNetDetector(os.environ.get("EMOSCOPE_YUNET_MODEL"), threads=2)
    landmarker = Landmarker(os.environ.get("EMOSCOPE_LANDMARKER_MODEL"), threads=2)
    rows, archives = [], {}
    for path, member in photos(limit):
        z = archives.setdefault(path, zipfile.ZipFile(path))
        try:
            image = decode_image(z.read(member), "bgr")
        except ValueError:
            continue
        for mirrored in (False, True):
            img = cv2.flip(image, 1) if mirrored else image
            dets = detector.detect(img)
            if not dets:
                continue
            d = max(dets, key=lambda d: d.box[2] * d.box[3])
            m = landmarker.measure(img, d.box, d.landmarks[:2])
            if m.presence < 0.9:
                continue
            pts = d.landmarks.astype(np.float64)
            eyes = (pts[0] + pts[1]) / 2
            span = float(np.linalg.norm(pts[1] - pts[0]))
            pose = pose_from_landmarks(pts, d.box[2])
            rows.append({"photo": member, "mirrored": mirrored, "mesh_yaw": m.head_pose["yaw"],
                         "landmark_yaw": pose[0] if pose else np.nan,
                         "nose_offset": (pts[2, 0] - eyes[0]) / max(span, 1e-6), "eyes_in_box": span / d.box[2]})
    return pd.DataFrame(rows)


def by_band(true: np.ndarray, estimate: np.ndarray) -> tuple[list[dict], float]:
    """Mean and mean absolute error of |estimate| against |true| per band of |true|, and the mean
    of the bands' mean absolute errors."""
    true, estimate = np.abs(true), np.abs(estimate)
    out = []
    for lo, hi in zip(BANDS, BANDS[1:]):
        err = (estimate - true)[(true >= lo) & (true < hi)]
        out.append({"true_yaw": f"{lo}-{hi}", "faces": int(len(err)),
                    "mean_error": round(float(err.mean()), 1) if len(err) else None,
                    "mean_abs_error": round(float(np.abs(err).mean()), 1) if len(err) else None})
    return out, float(np.mean([b["mean_abs_error"] for b in out if b["faces"]]))


def flag_agreement(true: np.ndarray, estimate: np.ndarray, candidates=range(30, 51)) -> list[dict]:
    """For each candidate limit on |estimate|: how its "head turned" flag agrees with the flag the
    mesh's yaw gives at the fit flag's limit (recall of the faces the mesh flags, the share of the
    others flagged, precision, F1)."""
    turned, est = np.abs(true) > LIMITS["yaw"][0], np.abs(estimate)
    out = []
    for limit in candidates:
        flag = est > limit
        hit = int((flag & turned).sum())
        recall, precision = hit / max(int(turned.sum()), 1), hit / max(int(flag.sum()), 1)
        out.append({"limit": limit, "recall": round(recall, 3), "others_flagged": round(float((flag & ~turned).mean()
                    / max((~turned).mean(), 1e-9)), 4), "precision": round(precision, 3),
                    "f1": round(2 * recall * precision / max(recall + precision, 1e-9), 3)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=4000, help="photos (each is read as it is and mirrored)")
    p.add_argument("--reuse", action="store_true", help="read the faces measured before (yaw-landmarks.csv)")
    args = p.parse_args()
    table = os.path.join(OUT, "yaw-landmarks.csv")
    df = pd.read_csv(table) if args.reuse else measure(args.limit).dropna()
    os.makedirs(OUT, exist_ok=True)
    true, offset, ratio = (df[c].to_numpy() for c in ("mesh_yaw", "nose_offset", "eyes_in_box"))
    df["landmark_yaw"] = estimate = yaw_from_points(offset, ratio)  # the estimate in use
    fits = {round(float(c), 2): by_band(true, yaw_from_offset(offset, c))[1] for c in np.arange(0.40, 1.001, 0.01)}
    best = min(fits, key=fits.get)
    agreement, nose_agreement = flag_agreement(true, estimate), flag_agreement(true, yaw_from_offset(offset))
    result = {"faces": len(df), "mirrored_share": round(float(df["mirrored"].mean()), 3),
              "r_yaw": round(float(np.corrcoef(true, estimate)[0, 1]), 3),
              "in_use": {"NOSE_OFFSET_AT_90": NOSE_OFFSET_AT_90, "EYES_IN_BOX_FRONTAL": EYES_IN_BOX_FRONTAL,
                         "by_band": by_band(true, estimate)[0], "mean_band_error": round(by_band(true, estimate)[1], 2)},
              "nose_alone": {"by_band": by_band(true, yaw_from_offset(offset))[0],
                             "mean_band_error": round(by_band(true, yaw_from_offset(offset))[1], 2),
                             "best_f1_limit": max(nose_agreement, key=lambda r: r["f1"])},
              "fitted": {"NOSE_OFFSET_AT_90": best, "mean_band_error_nose_alone": round(fits[best], 2),
                         "EYES_IN_BOX_FRONTAL": round(float(np.median(ratio[np.abs(true) < 15])), 3)},
              "landmark_limit": {"in_use": LANDMARK_YAW_LIMIT,
                                 "best_f1": max(agreement, key=lambda r: r["f1"])["limit"], "by_limit": agreement}}
    df.to_csv(table, index=False)
    with open(os.path.join(OUT, "yaw-landmarks.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
