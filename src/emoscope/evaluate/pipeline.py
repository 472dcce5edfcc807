"""End-to-end evaluation, the number a user meets: every photo goes through the `Analyzer`
(detector, crop rule, classifier, calibrated probabilities, valence rule) and its largest face is
the prediction. A photo in which no face is found counts as wrong and is reported as such."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ..analyze import Analyzer
from ..data.dataset import file_groups, load_dataset, split_file_grouping
from ..data.readers import FileTree
from ..images import ImageDecodeError, decode_image
from ..labels import VALENCE, class_valence
from ..metrics import bootstrap_intervals
from ..report import png_tag, write_html
from . import plots
from .calibration import reliability, valence_agreement
from .metrics_report import intervals_note, label_mapping, with_interval

NO_FACE = "no face"


def largest_face(faces):
    """The face with the largest box (the subject of a portrait), or None."""
    return max(faces, key=lambda f: f.box[2] * f.box[3]) if faces else None


def labelled_photos(data: str, split_file: str | None = None):
    """A photo collection's ids, labels and splits (as `split_file` states, if given); the photos
    themselves are read again when they are scored."""
    ds = load_dataset(data, 8, "gray", verbose=False)
    return ds.with_split_file(split_file) if split_file else ds


def photos_of(ds, split: str, classes: list[str]) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """The photos of one split of `ds` ('all': every one) whose class is one of `classes`: their ids,
    their labels as indices into `classes`, and how many of each class `classes` lacks were left out."""
    part = ds if split == "all" else ds.split(split)
    mapping, missing = label_mapping(classes, ds.classes)
    excluded = {c: int((part.labels == ds.classes.index(c)).sum()) for c in missing}
    part = part.select(np.isin(part.labels, list(mapping)))
    return part.ids.tolist(), np.array([mapping[j] for j in part.labels], np.int64), excluded


def pipeline_predictions(analyzer: Analyzer, data: str, ids: list[str], progress: bool = True) -> dict:
    """Run each photo `ids` of `data` (folder or zip) through the analyzer. Returns the largest
    face's probabilities (NaN rows where none was found), valence scores and labels, boxes, the
    photos that could not be read, the photos per second, and where the analyzer measures the
    face mesh the blendshapes and the mesh's presence score (NaN where there is none)."""
    from ..mesh import BLENDSHAPES
    tree = FileTree(data)
    k = len(analyzer.classes)
    probs = np.full((len(ids), k), np.nan)
    blend, presence = np.full((len(ids), len(BLENDSHAPES)), np.nan), np.full(len(ids), np.nan)
    scores, val_labels, boxes, unreadable = np.zeros(len(ids)), [], [], []
    it = ids
    if progress:
        from tqdm import tqdm
        it = tqdm(ids, desc="pipeline", unit="photo", file=sys.stderr, disable=None, leave=False)
    t0 = time.perf_counter()
    for i, sid in enumerate(it):
        try:
            face = largest_face(analyzer.analyze(decode_image(tree.read(sid))))
        except ImageDecodeError as exc:
            unreadable.append((sid, str(exc)))
            face = None
        if face is None:
            val_labels.append(NO_FACE)
            boxes.append(None)
            continue
        probs[i] = [face.probs[c] for c in analyzer.classes]
        if face.blendshapes is not None:
            blend[i], presence[i] = [face.blendshapes[b] for b in BLENDSHAPES], face.mesh_presence
        scores[i] = face.valence_score
        val_labels.append(face.valence)
        boxes.append(face.box)
    seconds = time.perf_counter() - t0
    return {"probs": probs, "valence_score": scores, "valence": val_labels, "boxes": boxes,
            "unreadable": unreadable, "photos_per_second": len(ids) / max(seconds, 1e-9),
            "blendshapes": blend, "mesh_presence": presence}


def macro_f1(cm: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present or predicted, from a confusion matrix whose last column
    counts photos with no face found (misses of their class)."""
    tp = np.diag(cm[:, :k]).astype(float)
    denom = cm[:, :k].sum(0) + cm.sum(1)  # predicted as the class + truly the class
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    counted = denom > 0
    return float(f1[counted].mean()) if counted.any() else 0.0


def pipeline_metrics(probs: np.ndarray, labels: np.ndarray, valence_labels: list[str], classes: list[str],
                     groups: np.ndarray | None = None, grouping: str = "") -> dict:
    """Metrics of end-to-end predictions; rows of NaN are photos with no face found (wrong). The
    bootstrap intervals draw whole `groups` (each photo's person, by the split file's rule
    `grouping`) where given, else photos."""
    found = ~np.isnan(probs).any(1)
    pred = np.where(found, np.nan_to_num(probs).argmax(1), len(classes))  # index len(classes): no face
    cm = np.zeros((len(classes), len(classes) + 1), np.int64)
    np.add.at(cm, (labels, pred), 1)
    support = cm.sum(1)
    recall = np.divide(np.diag(cm[:, :len(classes)]), support, out=np.zeros(len(classes)), where=support > 0)
    negative = [i for i, c in enumerate(classes) if VALENCE.get(c, 0.0) < 0]
    neutral = classes.index("neutral") if "neutral" in classes else None
    out = {
        "n": int(len(labels)), "faces_found": int(found.sum()), "no_face": int((~found).sum()),
        "accuracy": float((pred == labels).mean()) if len(labels) else 0.0,
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else 0.0,
        "macro_f1": macro_f1(cm, len(classes)),
        "intervals": bootstrap_intervals(labels, pred, len(classes), groups=groups),
        "intervals_resampled": "the photos" if groups is None else
        f"the {len(set(groups.tolist())):,} groups of photos ({grouping!r} on the file name), each group whole",
        "per_class_recall": {c: float(recall[i]) for i, c in enumerate(classes)},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "_labels": labels, "_predicted": pred, "_groups": groups,  # per photo, for a paired comparison
    }
    for min_support in (30, 20):
        present = [i for i in range(len(classes)) if support[i] >= min_support]
        out[f"mean_recall_support_{min_support}"] = float(recall[present].mean()) if present else 0.0
    if neutral is not None and support[neutral]:
        is_neutral = labels == neutral
        out["neutral_read_negative"] = float(np.isin(pred[is_neutral], negative).mean())
        out["neutral_valence_negative"] = float(np.mean([v == "negative" for v, t in zip(valence_labels, is_neutral)
                                                          if t]))
    agree = valence_agreement(valence_labels, [class_valence(classes[i]) for i in labels])
    out.update({"valence_agreement": agree["agreement"], "valence_agreement_balanced": agree["balanced"],
                "valence_agreement_per_valence": agree["per_valence"]})
    if found.any():
        out["ece_faces_found"] = reliability(probs[found], labels[found])["ece"]
    return out


def evaluate_pipeline(model: str | None, data: str, split: str = "test", split_file: str | None = None,
                      out: str | None = None, threads: int = 0, detector_model: str | None = None,
                      tta: str = "none", progress: bool = True, mesh: bool = False,
                      mesh_model: str | None = None) -> dict:
    """Score the Analyzer with `model` (an ONNX path or embedded name; default the shipped model)
    end to end on the photos of `data` in `split` (as `split_file` states, if given); with `mesh`,
    the face mesh is measured (and read together with the image where the model has a blendshape
    expert)."""
    ds = labelled_photos(data, split_file)
    if split != "all" and len(ds.split(split)) == 0:
        raise ValueError(f"{data} has no '{split}' split (has: {', '.join(sorted(set(ds.splits.tolist())))}; "
                         f"give --split-file or --split all)")
    analyzer = Analyzer(model, detector_model=detector_model, threads=threads, flip_tta=tta == "flip", mesh=mesh,
                        mesh_model=mesh_model)
    classes = analyzer.classes
    ids, labels, excluded = photos_of(ds, split, classes)
    pred = pipeline_predictions(analyzer, data, ids, progress)
    grouping = split_file_grouping(split_file) if split_file else None
    result = pipeline_metrics(pred["probs"], labels, pred["valence"], classes,
                              file_groups(ids, grouping) if grouping else None, grouping or "")
    result.update({"model": analyzer.classifier.model_path, "data": data, "split": split, "split_file": split_file,
                   "tta": tta, "mesh": mesh, "expression_from_blendshapes": analyzer.expert is not None and mesh,
                   "excluded_classes": excluded, "classes": classes,
                   "valence_rule": analyzer.valence_rule.to_dict(),
                   "unreadable": [f"{i}: {r}" for i, r in pred["unreadable"]],
                   "no_face_photos": [i for i, b in zip(ids, pred["boxes"]) if b is None],
                   "photos_per_second": round(pred["photos_per_second"], 1)})
    if out:
        write_pipeline_report(result, data, ids, labels, pred, out)
    return result


def write_pipeline_report(result: dict, data: str, ids: list[str], labels: np.ndarray, pred: dict, out: str,
                          n_mistakes: int = 24) -> None:
    """metrics.json, a confusion plot, the most confident neutral-read-as-negative photos, report.html."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({k: v for k, v in result.items() if not k.startswith("_")}, f, indent=1)
    classes = result["classes"]
    cm = np.array(result["confusion_matrix"])
    figs = [("Confusion matrix (faces found)", plots.confusion(cm[:, :len(classes)], classes,
                                                                os.path.join(out, "confusion.png")))]
    probs = pred["probs"]
    found = ~np.isnan(probs).any(1)
    top = np.nan_to_num(probs).argmax(1)
    negative = [i for i, c in enumerate(classes) if VALENCE.get(c, 0.0) < 0]
    if "neutral" in classes:
        wrong = np.flatnonzero(found & (labels == classes.index("neutral")) & np.isin(top, negative))
        worst = wrong[np.argsort(-probs[wrong, top[wrong]])][:n_mistakes]
        if len(worst):
            tree = FileTree(data)
            photos = [decode_image(tree.read(ids[i]), "rgb") for i in worst]
            titles = [f"{classes[top[i]]} {probs[i, top[i]]:.0%}\n{os.path.basename(ids[i])[:18]}" for i in worst]
            figs.append(("Most confident neutral faces read as negative",
                         plots.image_grid(photos, titles, os.path.join(out, "neutral_as_negative.png"))))
    r = result
    head = (f"<p>Model <code>{r['model']}</code> end to end (detector, crop, classifier) on <code>{r['data']}</code>, "
            f"split <b>{r['split']}</b> ({r['n']:,} photos; split file <code>{r['split_file']}</code>), TTA {r['tta']}. "
            f"The largest face is the prediction; a photo with no face found counts as wrong.</p>"
            f"<table><tr><th>accuracy</th><th>balanced accuracy</th><th>macro-F1</th><th>faces found</th><th>no face</th>"
            f"<th>neutral read as negative</th><th>mean recall (classes with ≥ 30 photos)</th><th>valence agreement</th>"
            f"<th>balanced</th><th>photos/s</th></tr><tr><td>{with_interval(r, 'accuracy')}</td>"
            f"<td>{with_interval(r, 'balanced_accuracy')}</td><td>{with_interval(r, 'macro_f1')}</td>"
            f"<td>{r['faces_found']}</td><td>{r['no_face']}</td>"
            f"<td>{r.get('neutral_read_negative', float('nan')):.4f}</td><td>{r['mean_recall_support_30']:.4f}</td>"
            f"<td>{r['valence_agreement']:.4f}</td><td>{r['valence_agreement_balanced']:.4f}</td>"
            f"<td>{r['photos_per_second']}</td></tr></table><p>{intervals_note(r['intervals_resampled'])}</p>"
            + "<table><tr><th>class</th><th>recall</th><th>photos</th><th>no face</th></tr>"
            + "".join(f"<tr><th>{c}</th><td>{r['per_class_recall'][c]:.3f}</td><td>{r['support'][c]}</td>"
                      f"<td>{cm[i, -1]}</td></tr>" for i, c in enumerate(classes)) + "</table>"
            + (f"<p>Excluded (the model lacks the class): {r['excluded_classes']}</p>" if r["excluded_classes"] else ""))
    write_html(os.path.join(out, "report.html"), "emoscope end-to-end evaluation",
               [("Metrics", head)] + [(title, png_tag(p, title)) for title, p in figs])
