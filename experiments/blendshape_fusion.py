"""Do MediaPipe's blendshapes add to the expression model on real photos? Each web_faces photo goes
through the Analyzer with the face mesh on; its largest face gives the model's calibrated
probabilities and the 52 blendshapes. A multinomial logistic regression (balanced class weights)
on log-probabilities plus blendshapes is compared with the model alone, by balanced recall over
the classes with at least 10 photos:
- on the validation part, by 5-fold cross-validation (the model has never trained on these
  photos, so its probabilities are as honest as at test time), with folds drawn by photo and by
  person (web_faces val's disgust and sad are one woman: folds by photo let the regression learn
  her); the folds by person decide whether fusion pays;
- on the test part, once, with the regression fitted on the whole validation part (reported,
  never used to choose).
Writes results.json and prints it.

Usage: python experiments/blendshape_fusion.py [--model PATH] [--out experiments/results/blendshape-fusion]
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile

import cv2
import numpy as np

from class_bias import person_ids
from emoscope.analyze import Analyzer
from emoscope.data.dataset import read_split_file
from emoscope.labels import canonical_label
from emoscope.mesh import BLENDSHAPES
from emoscope.metrics import balanced_accuracy

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_SUPPORT = 10


def features(analyzer: Analyzer, data: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log-probabilities, blendshapes, found) of the largest face of each photo."""
    k = len(analyzer.classes)
    logp, blend, found = np.zeros((len(ids), k)), np.zeros((len(ids), len(BLENDSHAPES))), np.zeros(len(ids), bool)
    with zipfile.ZipFile(data) as z:
        for i, sid in enumerate(ids):
            img = cv2.imdecode(np.frombuffer(z.read(sid), np.uint8), cv2.IMREAD_COLOR)
            faces = analyzer.analyze(img) if img is not None else []
            if faces:
                f = max(faces, key=lambda f: f.box[2] * f.box[3])
                logp[i] = np.log(np.clip([f.probs[c] for c in analyzer.classes], 1e-6, 1))
                blend[i] = [f.blendshapes[b] for b in BLENDSHAPES]
                found[i] = True
    return logp, blend, found


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, class_weight="balanced", max_iter=2000)).fit(x, y)


def main(args) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    analyzer = Analyzer(args.model, mesh=True, threads=args.threads,
                        detector_model=os.environ.get("EMOSCOPE_YUNET_MODEL")
                        or os.path.join(SHARED, "models", "face_detection_yunet.onnx"),
                        mesh_model=os.environ.get("EMOSCOPE_LANDMARKER_MODEL")
                        or os.path.join(SHARED, "models", "face_landmarker.task"))
    classes = analyzer.classes
    splits = read_split_file(args.split_file)
    parts = {}
    for part in ("val", "test"):
        ids = sorted(i for i, s in splits.items() if s == part)
        labels = np.array([classes.index(c) if (c := canonical_label(i.split("/")[-2])) in classes else -1
                           for i in ids])
        ids, labels = [i for i, y in zip(ids, labels) if y >= 0], labels[labels >= 0]
        logp, blend, found = features(analyzer, args.data, ids)
        parts[part] = (logp[found], blend[found], labels[found], person_ids(np.array(ids)[found], True))
    k = len(classes)
    logp, blend, y, people = parts["val"]
    model_only = logp.argmax(1)
    present = np.bincount(y, minlength=k)
    strat = np.where(present[y] >= 5, y, -1)  # classes too small to stratify are spread at random
    result = {"model": analyzer.classifier.model_path, "min_support": MIN_SUPPORT,
              "val_photos": int(len(y)), "test_photos": int(len(parts["test"][2])), "val_people": len(set(people)),
              "val_balanced_model": round(balanced_accuracy(y, model_only, k, MIN_SUPPORT), 4),
              "val_accuracy_model": round(float((model_only == y).mean()), 4)}
    for suffix, folds in (("cv", StratifiedKFold(5, shuffle=True, random_state=0).split(y, strat)),
                          ("cv_by_person", StratifiedGroupKFold(5, shuffle=True, random_state=0).split(y, strat, people))):
        fused_cv, blend_cv = np.zeros_like(y), np.zeros_like(y)
        for train, held in folds:
            fused_cv[held] = fit(np.hstack([logp, blend])[train], y[train]).predict(np.hstack([logp, blend])[held])
            blend_cv[held] = fit(blend[train], y[train]).predict(blend[held])
        result.update({f"val_balanced_blendshapes_only_{suffix}": round(balanced_accuracy(y, blend_cv, k, MIN_SUPPORT), 4),
                       f"val_balanced_fused_{suffix}": round(balanced_accuracy(y, fused_cv, k, MIN_SUPPORT), 4),
                       f"val_accuracy_fused_{suffix}": round(float((fused_cv == y).mean()), 4)})
    t_logp, t_blend, t_y, _ = parts["test"]
    fused = fit(np.hstack([logp, blend]), y)
    result.update({
        "test_balanced_model": round(balanced_accuracy(t_y, t_logp.argmax(1), k, MIN_SUPPORT), 4),
        "test_balanced_fused": round(balanced_accuracy(t_y, fused.predict(np.hstack([t_logp, t_blend])), k,
                                                       MIN_SUPPORT), 4),
        "test_accuracy_model": round(float((t_logp.argmax(1) == t_y).mean()), 4),
        "test_accuracy_fused": round(float((fused.predict(np.hstack([t_logp, t_blend])) == t_y).mean()), 4),
    })
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="expression ONNX (default: the embedded model)")
    p.add_argument("--data", default=os.path.join(SHARED, "datasets", "web_faces.zip"))
    p.add_argument("--split-file", default=os.path.join(REPO, "configs", "splits", "web-faces.csv"))
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "blendshape-fusion"))
    p.add_argument("--threads", type=int, default=1)
    print(json.dumps(main(p.parse_args()), indent=1))
