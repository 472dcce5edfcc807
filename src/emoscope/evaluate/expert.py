"""The blendshape expert of an expression model (`emoscope blendshape-expert`): a second reading of
the expression from the face mesh's 52 blendshapes, fitted on labelled photos and stored in the
model's metadata (`contract.BlendshapeExpert`), so that the Analyzer reads the expression from the
image and the blendshapes together wherever it measures the mesh.

Each photo goes through the Analyzer with the mesh on (its largest face; photos with no face, or
where the mesh finds none, are left out). A balanced multinomial logistic regression on the
standardised blendshapes is fitted on the `fit` part (the people the image model may have trained
on: its own probabilities there are fitted, so they are not used). On the `choose` part (people it
has not seen), one weight for the blendshape reading is chosen on balanced accuracy, then the
temperature of the sum (NLL) and its valence thresholds.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from ..contract import BlendshapeExpert, is_onnx_path, update_props
from ..metrics import BALANCE_MIN_SUPPORT, balanced_accuracy, softmax
from .calibration import fit_temperature, fit_valence

WEIGHTS = np.round(np.arange(0.0, 2.0001, 0.1), 2)
REGULARISATION = 0.3   # the logistic regression's C (inverse L2 strength) on standardised blendshapes


def fit_expert(blend_fit: np.ndarray, y_fit: np.ndarray, probs: np.ndarray, blend: np.ndarray, y: np.ndarray,
               classes: list[str]) -> BlendshapeExpert:
    """The expert fitted on (`blend_fit`, `y_fit`), its weight, temperature and valence chosen on the
    image model's probabilities `probs` and the blendshapes `blend` of the faces labelled `y`.
    A weight of 0 (the blendshapes do not help there) is a valid outcome."""
    from sklearn.linear_model import LogisticRegression
    k = len(classes)
    missing = sorted(set(range(k)) - set(np.unique(y_fit).tolist()))
    if missing:
        raise ValueError("the photos to fit the blendshape reading on have no "
                         + ", ".join(classes[i] for i in missing))
    mean, scale = blend_fit.mean(0), blend_fit.std(0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    lr = LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=3000)
    lr.fit((blend_fit - mean) / scale, y_fit)
    expert = BlendshapeExpert(tuple(mean), tuple(scale), tuple(map(tuple, lr.coef_)), tuple(lr.intercept_), 0.0)
    scores = [balanced_accuracy(y, expert.fused_logits(probs, blend, w).argmax(1), k, BALANCE_MIN_SUPPORT)
              for w in WEIGHTS]
    weight = float(WEIGHTS[int(np.argmax(scores))])  # the first best: ties go to the smaller weight
    fused = expert.fused_logits(probs, blend, weight)
    temperature = fit_temperature(fused, y)
    valence = fit_valence(softmax(fused, temperature), y, classes).to_dict()
    alone = balanced_accuracy(y, expert.log_probs(blend).argmax(1), k, BALANCE_MIN_SUPPORT)
    fitted = {"fit_faces": int(len(y_fit)), "choose_faces": int(len(y)), "min_support": BALANCE_MIN_SUPPORT,
              "balanced_image": round(scores[0], 4), "balanced_blendshapes": round(alone, 4),
              "balanced_fused": round(max(scores), 4),
              "balanced_by_weight": {str(w): round(s, 4) for w, s in zip(WEIGHTS, scores)}}
    return BlendshapeExpert(expert.mean, expert.scale, expert.coef, expert.intercept, weight, temperature, valence,
                            fitted)


def read_faces(analyzer, data: str, ids: list[str], progress: bool = True):
    """(image probabilities, blendshapes, kept) of the largest face of each photo, through an
    analyzer that measures the mesh (and has no blendshape expert); `kept` marks photos whose face
    was found by the detector and the mesh."""
    from ..mesh import PRESENCE_THRESHOLD
    from .pipeline import pipeline_predictions
    pred = pipeline_predictions(analyzer, data, ids, progress)
    return pred["probs"], pred["blendshapes"], pred["mesh_presence"] >= PRESENCE_THRESHOLD  # NaN: not kept


def labelled_parts(data: str, split_file: str | None, parts: tuple[str, ...], classes: list[str]) -> dict:
    """{part: (photo ids, labels as indices into `classes`)}, photos of other classes left out."""
    from .pipeline import labelled_photos, photos_of
    ds = labelled_photos(data, split_file)
    out = {}
    for name in parts:
        ids, labels, _ = photos_of(ds, name, classes)
        if not ids:
            raise ValueError(f"{data} has no photos in its '{name}' part of the model's classes")
        out[name] = (ids, labels)
    return out


def blendshape_expert(model: str, data: str, split_file: str | None = None, fit_part: str = "train",
                      choose_part: str = "val", threads: int = 0, detector_model: str | None = None,
                      mesh_model: str | None = None, progress: bool = True) -> BlendshapeExpert:
    """Fit the blendshape expert of the ONNX expression model at `model` on the photos of `data`
    and write it into the model's metadata (replacing any it had)."""
    from ..analyze import Analyzer
    analyzer = Analyzer(model, detector_model=detector_model, threads=threads, mesh=True, mesh_model=mesh_model)
    analyzer.expert = None  # the image model's own probabilities
    classes = analyzer.classes
    parts = labelled_parts(data, split_file, (fit_part, choose_part), classes)
    faces = {}
    for name, (ids, labels) in parts.items():
        probs, blend, kept = read_faces(analyzer, data, ids, progress)
        faces[name] = (probs[kept], blend[kept], labels[kept])
    _, blend_fit, y_fit = faces[fit_part]
    probs, blend, y = faces[choose_part]
    expert = fit_expert(blend_fit, y_fit, probs, blend, y, classes)
    expert.fitted.update({"data": os.path.basename(data), "split_file": os.path.basename(split_file or ""),
                          "fit_part": fit_part, "choose_part": choose_part})
    update_props(model, lambda props: props.update({BlendshapeExpert.KEY: json.dumps(expert.to_dict())}))
    return expert


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the expression ONNX file to fit it for (written in place)")
    p.add_argument("--data", required=True, help="photos in class folders (folder or .zip)")
    p.add_argument("--split-file", help="the splits as `emoscope data split` wrote them (e.g. configs/splits/web-faces.csv)")
    p.add_argument("--fit-part", default="train", help="part to fit the blendshape reading on (default train)")
    p.add_argument("--choose-part", default="val",
                   help="part of other people to choose its weight, temperature and valence on (default val)")
    p.add_argument("--detector-model", help="YuNet ONNX path (else $EMOSCOPE_YUNET_MODEL, cache, download)")
    p.add_argument("--mesh-model", help="face_landmarker.task (else $EMOSCOPE_LANDMARKER_MODEL, cache, download)")
    p.add_argument("--threads", type=int, default=0)


def run(args) -> int:
    if not os.path.isfile(args.model) or not is_onnx_path(args.model):
        raise SystemExit(f"emoscope blendshape-expert: {args.model} is not an ONNX file")
    try:
        expert = blendshape_expert(args.model, args.data, args.split_file, args.fit_part, args.choose_part,
                                   args.threads, args.detector_model, args.mesh_model)
    except ValueError as exc:
        raise SystemExit(f"emoscope blendshape-expert: {exc}")
    print(json.dumps({"weight": expert.weight, "temperature": round(expert.temperature, 4),
                      "valence": expert.valence, **{k: v for k, v in expert.fitted.items()
                                                   if k != "balanced_by_weight"}}, indent=1))
    return 0
