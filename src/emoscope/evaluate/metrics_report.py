"""Score predictions: accuracy, balanced accuracy, top-2, per-class P/R/F1, macro and weighted F1,
one-vs-rest ROC/AUC, confusion matrices and calibration. NumPy only."""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..labels import canonical_label
from .calibration import reliability


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """FPR, TPR and the area under the curve for one class (ties handled as one step)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positive[order].astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(y)[distinct], np.cumsum(1 - y)[distinct]
    P, N = y.sum(), len(y) - y.sum()
    if P == 0 or N == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    tpr, fpr = np.r_[0, tp / P], np.r_[0, fp / N]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def intervals_note(resampled: str = "the images") -> str:
    """What a report's bracketed ranges are; `resampled`: what the bootstrap drew."""
    return (f"Ranges in brackets: 95% bootstrap intervals (1,000 resamples of {resampled}), how far the number "
            f"could move on another sample of the same size.")


def with_interval(result: dict, key: str) -> str:
    """A metric to 3 decimals with its bootstrap interval ('0.520 (0.461-0.579)'), for reports."""
    iv = result.get("intervals", {}).get(key)
    return f"{result[key]:.3f}" + (f" ({iv[0]:.3f}–{iv[1]:.3f})" if iv else "")


def label_mapping(model_classes: list[str], data_classes: list[str]) -> tuple[dict[int, int], list[str]]:
    """Map dataset label indices to model output indices through the canonical vocabulary.
    Dataset classes the model lacks (e.g. contempt for a 7-class model) are returned separately so
    they can be excluded and reported, never scored as wrong; a dataset with none of the model's
    classes is refused."""
    canon_model = {canonical_label(c) or c: i for i, c in enumerate(model_classes)}
    mapping, missing = {}, []
    for j, c in enumerate(data_classes):
        i = canon_model.get(canonical_label(c) or c)
        if i is None:
            missing.append(c)
        else:
            mapping[j] = i
    if data_classes and not mapping:
        raise ValueError(f"none of the data's classes ({', '.join(data_classes)}) is one the model reads "
                         f"({', '.join(model_classes)}): nothing to score")
    return mapping, missing


def score(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Every metric of the evaluation report for probabilities (N, K) and true labels (N,)."""
    k = len(classes)
    pred = probs.argmax(1)
    cm = metrics.confusion_matrix(labels, pred, k)
    pc = metrics.per_class(cm)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    roc = {}
    for i, c in enumerate(classes):
        fpr, tpr, auc = roc_curve(probs[:, i], labels == i)
        roc[c] = {"fpr": fpr, "tpr": tpr, "auc": auc}
    rel = reliability(probs, labels)
    aucs = [r["auc"] for r in roc.values() if not np.isnan(r["auc"])]
    return {
        "n": int(len(labels)), **metrics.summary(labels, pred, k),
        "top2_accuracy": float((top2 == labels[:, None]).any(1).mean()) if len(labels) else 0.0,
        "per_class": {c: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
                          "f1": float(pc["f1"][i]), "support": int(pc["support"][i]),
                          "auc": roc[c]["auc"]} for i, c in enumerate(classes)},
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "ece": rel["ece"], "confusion_matrix": cm.tolist(), "intervals": metrics.bootstrap_intervals(labels, pred, k),
        "_roc": roc, "_reliability": rel,
    }
