"""Cross-dataset probe for the model card: the expression model on the colour photos of
`gender_faces` (a different source than FER2013, labelled only man/woman). With no expression
labels there is no accuracy to report; what it measures is how often YuNet finds the face, how
the predicted expressions are distributed, and whether that distribution differs between the two
groups (a known bias of FER models: smiles are read more readily on women's faces).

Usage: python experiments/cross_dataset.py [--model expression-int8] [--out experiments/results/cross-dataset]
"""

from __future__ import annotations

import argparse
import csv
import os
import zipfile
from collections import defaultdict

import cv2
import numpy as np

from emoscope.analyze import Analyzer
from emoscope.report import pyplot

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cross-dataset")


def probe(analyzer: Analyzer, path: str) -> dict[str, dict]:
    """Per group (the photo's folder): photo count, unreadable count, and the probabilities and
    valence score of the most confident face in each photo where one is found."""
    groups: dict[str, dict] = defaultdict(lambda: {"photos": 0, "unreadable": 0, "probs": [], "valence": []})
    with zipfile.ZipFile(path) as zf:
        for name in sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))):
            g = groups[name.split("/")[-2]]
            g["photos"] += 1
            img = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                g["unreadable"] += 1
                continue
            faces = analyzer.analyze(img)
            if faces:
                g["probs"].append([faces[0].probs[c] for c in analyzer.classes])
                g["valence"].append(faces[0].valence_score)
    return dict(groups)


def write_results(groups: dict[str, dict], classes: list[str], model: str, out: str) -> list[dict]:
    os.makedirs(out, exist_ok=True)
    rows = []
    for name, g in sorted(groups.items()):
        probs = np.asarray(g["probs"]).reshape(-1, len(classes))
        top = np.bincount(probs.argmax(1), minlength=len(classes)) / max(len(probs), 1)
        rows.append({"group": name, "photos": g["photos"], "unreadable": g["unreadable"], "faces": len(probs),
                     **{f"top_{c}": round(float(s), 4) for c, s in zip(classes, top)},
                     "mean_valence": round(float(np.mean(g["valence"])) if g["valence"] else 0.0, 4)})
    with open(os.path.join(out, "cross_dataset.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    head = ["group", "photos", "faces found"] + classes + ["mean valence"]
    lines = [f"Model: `{model}`. Share of faces whose top expression is each class.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["group"], str(r["photos"]), f"{r['faces']} ({r['faces'] / max(r['photos'], 1):.1%})"]
        cells += [f"{r[f'top_{c}']:.1%}" for c in classes] + [f"{r['mean_valence']:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    with open(os.path.join(out, "cross_dataset.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        ax.bar(np.arange(len(classes)) + i * width, [r[f"top_{c}"] for c in classes], width, label=r["group"])
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes)
    ax.set_ylabel("share of faces")
    ax.set_title("Predicted expression on gender_faces, by group")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cross_dataset.png"), dpi=120)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="expression-int8")
    p.add_argument("--data", default=os.path.join(SHARED, "datasets", "gender_faces.zip"))
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    analyzer = Analyzer(args.model, threads=args.threads, detector_model=os.environ.get("EMOSCOPE_YUNET_MODEL")
                        or os.path.join(SHARED, "models", "face_detection_yunet.onnx"))
    for row in write_results(probe(analyzer, args.data), analyzer.classes, args.model, args.out):
        print(row)
