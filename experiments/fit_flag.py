"""The fit flag's limits, from measured curves: web_faces val photos (people the model was not
chosen on) degraded on purpose (head turn, dim uneven light, blur, a smaller photo) at four
strengths, each read end to end by the Analyzer; for every measure of `emoscope.analyze.quality`,
the accuracy of the faces at each value, and of the faces kept by each candidate limit against
the share kept. Writes experiments/results/fit-flag/{faces.csv,curves.csv,curves.png}.

Usage: python experiments/fit_flag.py [--model expression-int8] [--limit 400]
"""

from __future__ import annotations

import argparse
import os

import cv2
import numpy as np
import pandas as pd
import torch

from emoscope import Analyzer
from emoscope.analyze.quality import LANDMARK_YAW_LIMIT, LIMITS, assess
from emoscope.data.readers import FileTree
from emoscope.evaluate.pipeline import labelled_photos, photos_of
from emoscope.images import decode_image
from emoscope.train.augment import gaussian_blur, head_turn, uneven_light

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
WEB = os.path.join(SHARED, "datasets", "web_faces.zip")
SPLIT = os.path.join(os.path.dirname(__file__), "..", "configs", "splits", "web-faces.csv")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fit-flag")
STRENGTHS = (0.0, 1 / 3, 2 / 3, 1.0)


def degraded(bgr: np.ndarray, kind: str, strength: float) -> np.ndarray:
    """The photo with one degradation at `strength` (0: untouched)."""
    if strength == 0:
        return bgr
    if kind == "small":  # the whole photo shrunk: the face really is smaller
        side = max(16, int(round(bgr.shape[1] * (1 - 0.8 * strength))))
        return cv2.resize(bgr, (side, int(round(side * bgr.shape[0] / bgr.shape[1]))), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(bgr).permute(2, 0, 1)[None].float() / 255
    s = torch.tensor([strength])
    if kind == "turn":
        x = head_turn(x, s * 60, torch.zeros(1))
    elif kind == "dark":
        x = uneven_light(x, s, torch.zeros(1))
    elif kind == "blur":
        x = gaussian_blur(x, s)
    return (x[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def measure(model: str, limit: int) -> pd.DataFrame:
    analyzer = Analyzer(model)
    ds = labelled_photos(WEB, SPLIT)
    ids, labels, _ = photos_of(ds, "val", analyzer.classes)
    if limit:
        pick = np.random.default_rng(0).permutation(len(ids))[:limit]
        ids, labels = [ids[i] for i in pick], labels[pick]
    tree = FileTree(WEB)
    rows = []
    for sid, label in zip(ids, labels):
        bgr = decode_image(tree.read(sid))
        for kind in ("turn", "dark", "blur", "small"):
            for strength in STRENGTHS:
                if strength == 0 and kind != "turn":
                    continue  # the clean photo once
                img = degraded(bgr, kind, strength)
                faces = analyzer.analyze(img)
                if not faces:
                    rows.append({"id": sid, "kind": kind if strength else "clean", "strength": strength, "found": 0})
                    continue
                f = max(faces, key=lambda f: f.box[2] * f.box[3])
                fit = assess(img, f.box, f.landmarks, f.score)
                rows.append({"id": sid, "kind": kind if strength else "clean", "strength": strength, "found": 1,
                             "correct": int(analyzer.classes.index(f.label) == label), **fit.measures})
    return pd.DataFrame(rows)


def curves(faces: pd.DataFrame) -> pd.DataFrame:
    """Per measure and candidate limit: the share of found faces kept and their accuracy, and the
    accuracy of the faces it rejects."""
    found = faces[faces["found"] == 1]
    out = []
    for key, (limit, good) in LIMITS.items():
        if key not in found or found[key].isna().all():
            continue
        v = found[key].abs() if key in ("yaw", "pitch") else found[key]
        worse_is_higher = key in ("yaw", "pitch")
        for cand in np.unique(np.quantile(v.dropna(), np.linspace(0.02, 0.98, 25)).round(2)):
            keep = v <= cand if worse_is_higher else v >= cand
            out.append({"measure": key, "limit": cand, "kept": keep.mean(), "accuracy_kept": found.loc[keep, "correct"].mean(),
                        "accuracy_rejected": found.loc[~keep, "correct"].mean() if (~keep).any() else np.nan,
                        "shipped_limit": LANDMARK_YAW_LIMIT if key == "yaw" else limit})  # yaw here: five points
    return pd.DataFrame(out)


def plot(c: pd.DataFrame, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = list(c["measure"].unique())
    fig, axes = plt.subplots(2, (len(keys) + 1) // 2, figsize=(4 * ((len(keys) + 1) // 2), 7), squeeze=False)
    for ax, key in zip(axes.ravel(), keys):
        g = c[c["measure"] == key]
        ax.plot(g["limit"], g["accuracy_kept"] * 100, "o-", label="accuracy of faces kept")
        ax.plot(g["limit"], g["accuracy_rejected"] * 100, "s--", label="accuracy of faces rejected")
        ax.plot(g["limit"], g["kept"] * 100, ":", color="grey", label="faces kept (%)")
        ax.axvline(g["shipped_limit"].iloc[0], color="red", lw=1, label="shipped limit")
        ax.set_title(key)
        ax.set_xlabel(f"limit ({key})")
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.suptitle("Fit flag: web_faces val, degraded on purpose, end to end")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="ONNX file or embedded name (default: the shipped model)")
    p.add_argument("--limit", type=int, default=0, help="score this many val photos (seeded; 0: all)")
    args = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    faces = measure(args.model, args.limit)
    faces.to_csv(os.path.join(OUT, "faces.csv"), index=False)
    c = curves(faces)
    c.to_csv(os.path.join(OUT, "curves.csv"), index=False)
    plot(c, os.path.join(OUT, "curves.png"))
    by_kind = faces.groupby(["kind", "strength"]).agg(n=("found", "size"), found=("found", "mean"),
                                                      accuracy=("correct", "mean"))
    print(by_kind.round(3).to_string())


if __name__ == "__main__":
    main()
