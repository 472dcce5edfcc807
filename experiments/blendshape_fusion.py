"""Do MediaPipe's blendshapes add to the expression model on real photos? Each web_faces photo goes
through the Analyzer with the face mesh on (and no blendshape expert); its largest face gives the
image model's calibrated probabilities and the 52 blendshapes. Judged by balanced recall over the
classes with at least 10 photos, with folds drawn by person deciding (web_faces val's disgust and
sad are one woman: folds by photo let a regression learn her). Two ways:
1. fusion fitted on the validation part: a multinomial logistic regression (balanced class
   weights) on log-probabilities plus blendshapes, by 5-fold cross-validation inside the
   validation part (the model never trained on it), folds by photo and by person;
2. the blendshape expert (`emoscope blendshape-expert`, `emoscope.evaluate.expert.fit_expert`):
   a regression on the blendshapes alone fitted on other people, added to the model's
   log-probabilities with one weight chosen on the validation part (here by 5-fold
   cross-validation by person). Fitted on web_faces train (about 1,300 people; the model's own
   probabilities there are fitted, so only the blendshapes are used), on FER+ train (majority
   labels, up to `--ferplus-per-class` images a class, 48 px upscaled 4x so that the detector and
   the mesh find the face), and on both.
Each way is also fitted once on the whole validation part and scored on the test part (reported,
never used to choose). Writes results.json and prints it.

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
from emoscope.data.ferplus import majority_labels, votes_for
from emoscope.evaluate.expert import fit_expert, labelled_parts, read_faces
from emoscope.evaluate.pipeline import largest_face
from emoscope.mesh import BLENDSHAPES, PRESENCE_THRESHOLD
from emoscope.metrics import balanced_accuracy

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_SUPPORT = 10
FERPLUS_UPSCALE = 4


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.3, class_weight="balanced", max_iter=2000)).fit(x, y)


def ferplus_blendshapes(analyzer: Analyzer, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Blendshapes and FER+ majority labels of FER2013 training images (up to `per_class` a class,
    drawn with seed 0), each upscaled so the detector and the mesh find the face."""
    data = os.path.join(SHARED, "datasets", "fer2013.zip")
    with zipfile.ZipFile(data) as z:
        ids = np.array(sorted(n for n in z.namelist() if "/train/" in n and n.endswith(".jpg")))
        y = majority_labels(votes_for(ids, os.path.join(SHARED, "datasets", "fer2013-ferplus-votes.csv")),
                            analyzer.classes)
        rng, chosen = np.random.default_rng(0), []
        for c in range(len(analyzer.classes)):
            chosen += rng.permutation(np.flatnonzero(y == c))[:per_class].tolist()
        blend, labels = [], []
        for i in sorted(chosen):
            img = cv2.imdecode(np.frombuffer(z.read(ids[i]), np.uint8), cv2.IMREAD_COLOR)
            face = largest_face(analyzer.analyze(cv2.resize(img, None, fx=FERPLUS_UPSCALE, fy=FERPLUS_UPSCALE,
                                                            interpolation=cv2.INTER_CUBIC), mesh=True))
            if face is not None and face.mesh_presence >= PRESENCE_THRESHOLD:
                blend.append([face.blendshapes[b] for b in BLENDSHAPES])
                labels.append(y[i])
    return np.array(blend), np.array(labels, np.int64)


def fusion_on_validation(val, test, k: int, folds: dict) -> dict:
    """Way 1: the regression on log-probabilities + blendshapes fitted inside the validation part."""
    (probs, blend, y), (t_probs, t_blend, t_y) = val, test
    x, t_x = np.hstack([np.log(np.clip(probs, 1e-6, 1)), blend]), np.hstack([np.log(np.clip(t_probs, 1e-6, 1)), t_blend])
    out = {}
    for suffix, split in folds.items():
        fused_cv, blend_cv = np.zeros_like(y), np.zeros_like(y)
        for train, held in split:
            fused_cv[held] = fit(x[train], y[train]).predict(x[held])
            blend_cv[held] = fit(blend[train], y[train]).predict(blend[held])
        out.update({f"val_balanced_blendshapes_only_{suffix}": round(balanced_accuracy(y, blend_cv, k, MIN_SUPPORT), 4),
                    f"val_balanced_fused_{suffix}": round(balanced_accuracy(y, fused_cv, k, MIN_SUPPORT), 4),
                    f"val_accuracy_fused_{suffix}": round(float((fused_cv == y).mean()), 4)})
    pred = fit(x, y).predict(t_x)
    out.update({"test_balanced_fused": round(balanced_accuracy(t_y, pred, k, MIN_SUPPORT), 4),
                "test_accuracy_fused": round(float((pred == t_y).mean()), 4)})
    return out


def expert(fit_with, val, test, classes: list[str], by_person) -> dict:
    """Way 2: the blendshape expert fitted on `fit_with`, its weight by cross-validation by person."""
    (blend_fit, y_fit), (probs, blend, y), (t_probs, t_blend, t_y) = fit_with, val, test
    k, held_pred = len(classes), np.zeros_like(y)
    for train, held in by_person:
        e = fit_expert(blend_fit, y_fit, probs[train], blend[train], y[train], classes)
        held_pred[held] = e.fused_logits(probs[held], blend[held]).argmax(1)
    e = fit_expert(blend_fit, y_fit, probs, blend, y, classes)
    pred = e.fuse(t_probs, t_blend).argmax(1)
    recall = {c: round(float((pred[t_y == i] == i).mean()), 4) for i, c in enumerate(classes) if (t_y == i).any()}
    return {"fit_faces": int(len(y_fit)), "weight": e.weight, "temperature": round(e.temperature, 4),
            "val_balanced_blendshapes_only": e.fitted["balanced_blendshapes"],
            "val_balanced_fused_cv_by_person": round(balanced_accuracy(y, held_pred, k, MIN_SUPPORT), 4),
            "val_accuracy_fused_cv_by_person": round(float((held_pred == y).mean()), 4),
            "test_balanced_fused": round(balanced_accuracy(t_y, pred, k, MIN_SUPPORT), 4),
            "test_accuracy_fused": round(float((pred == t_y).mean()), 4), "test_recall_fused": recall}


def main(args) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    analyzer = Analyzer(args.model, mesh=True, threads=args.threads,
                        detector_model=os.environ.get("EMOSCOPE_YUNET_MODEL")
                        or os.path.join(SHARED, "models", "face_detection_yunet.onnx"),
                        mesh_model=os.environ.get("EMOSCOPE_LANDMARKER_MODEL")
                        or os.path.join(SHARED, "models", "face_landmarker.task"))
    analyzer.expert = None  # the image model's own probabilities
    classes, k = analyzer.classes, len(analyzer.classes)
    faces = {}
    for part, (ids, labels) in labelled_parts(args.data, args.split_file, ("train", "val", "test"), classes).items():
        probs, blend, kept = read_faces(analyzer, args.data, ids, progress=False)
        faces[part] = (probs[kept], blend[kept], labels[kept], person_ids(np.array(ids)[kept], True))
    probs, blend, y, people = faces["val"]
    val, test = faces["val"][:3], faces["test"][:3]
    strat = np.where(np.bincount(y, minlength=k)[y] >= 5, y, -1)  # classes too small to stratify: at random
    by_person = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(y, strat, people))
    t_probs, _, t_y, _ = faces["test"]
    result = {"model": analyzer.classifier.model_path, "min_support": MIN_SUPPORT,
              "val_photos": int(len(y)), "test_photos": int(len(t_y)), "val_people": len(set(people)),
              "val_balanced_model": round(balanced_accuracy(y, probs.argmax(1), k, MIN_SUPPORT), 4),
              "val_accuracy_model": round(float((probs.argmax(1) == y).mean()), 4),
              "test_balanced_model": round(balanced_accuracy(t_y, t_probs.argmax(1), k, MIN_SUPPORT), 4),
              "test_accuracy_model": round(float((t_probs.argmax(1) == t_y).mean()), 4)}
    result["fusion_fitted_on_validation"] = fusion_on_validation(
        val, test, k, {"cv": StratifiedKFold(5, shuffle=True, random_state=0).split(y, strat), "cv_by_person": by_person})
    web = faces["train"][1:3]
    ferplus = ferplus_blendshapes(analyzer, args.ferplus_per_class)
    result["expert"] = {name: expert(fit_with, val, test, classes, by_person) for name, fit_with in (
        ("web_faces_train", web), ("ferplus_train", ferplus),
        ("both", (np.vstack([web[0], ferplus[0]]), np.concatenate([web[1], ferplus[1]]))))}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="expression ONNX (default: the embedded model)")
    p.add_argument("--data", default=os.path.join(SHARED, "datasets", "web_faces.zip"))
    p.add_argument("--split-file", default=os.path.join(REPO, "configs", "splits", "web-faces.csv"))
    p.add_argument("--ferplus-per-class", type=int, default=1500)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "blendshape-fusion"))
    p.add_argument("--threads", type=int, default=1)
    print(json.dumps(main(p.parse_args()), indent=1))
