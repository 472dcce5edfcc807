"""How well the fit flag's head turn, estimated from YuNet's five points when the face mesh is off,
follows the face mesh's own head pose: every face of the web_faces photos (train and val parts;
the test part stays unseen) and of gender_faces, the largest face of each photo, mirrored too.
For each face: the mesh's yaw (the reference, where the mesh is sure: presence >= 0.9), the
estimate `emoscope.analyze.quality.pose_from_landmarks` gives, and the two ratios it reads (the
nose's offset from the eyes' midpoint in eye distances, and the eyes' distance in box widths).
Prints the error by band of true yaw, and the `NOSE_OFFSET_AT_90` that gives the lowest mean
error over the bands (each band counts alike: the turned faces the flag is for are few). Writes
experiments/results/fit-flag/yaw-landmarks.{csv,json}.

Usage: python experiments/yaw_from_landmarks.py [--limit 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile

import cv2
import numpy as np
import pandas as pd

from emoscope.analyze.quality import NOSE_OFFSET_AT_90, pose_from_landmarks, yaw_from_offset
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
            pose = pose_from_landmarks(pts)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=4000, help="photos (each is read as it is and mirrored)")
    args = p.parse_args()
    df = measure(args.limit).dropna()
    os.makedirs(OUT, exist_ok=True)
    df.to_csv(os.path.join(OUT, "yaw-landmarks.csv"), index=False)
    true, offset = df["mesh_yaw"].to_numpy(), df["nose_offset"].to_numpy()
    fits = {round(float(c), 2): by_band(true, yaw_from_offset(offset, c))[1] for c in np.arange(0.40, 1.001, 0.01)}
    best = min(fits, key=fits.get)
    result = {"faces": len(df), "mirrored_share": round(float(df["mirrored"].mean()), 3),
              "r_yaw": round(float(np.corrcoef(true, df["landmark_yaw"])[0, 1]), 3),
              "in_use": {"NOSE_OFFSET_AT_90": NOSE_OFFSET_AT_90, "by_band": by_band(true, df["landmark_yaw"])[0]},
              "best": {"NOSE_OFFSET_AT_90": best, "mean_band_error": round(fits[best], 2),
                       "by_band": by_band(true, yaw_from_offset(offset, best))[0]},
              "before_0.85": by_band(true, yaw_from_offset(offset, 0.85))[0]}
    with open(os.path.join(OUT, "yaw-landmarks.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
