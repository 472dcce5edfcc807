"""Classification metrics in plain NumPy, shared by training, evaluation and the runtime.

Computed from the confusion matrix so that macro-F1 can never disagree with accuracy the way a
per-batch average would (a seed reported macro-F1 0.18 at 61% accuracy that way)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    idx = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn does)."""
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(0).astype(np.float64)
    true = cm.sum(1).astype(np.float64)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true.astype(np.int64)}


def summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1 and weighted F1."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    pc = per_class(cm)
    present = pc["support"] > 0
    total = cm.sum()
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "balanced_accuracy": float(pc["recall"][present].mean()) if present.any() else 0.0,
        "macro_f1": float(pc["f1"][present | (cm.sum(0) > 0)].mean()) if total else 0.0,
        "weighted_f1": float((pc["f1"] * pc["support"]).sum() / total) if total else 0.0,
    }


def resampled_summary(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                      draws) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro-F1 (as `summary` computes them) of each resample:
    `draws` holds, per resample, the indices of the samples it takes (an (R, N) array, or R arrays
    of any length when whole groups are drawn). A prediction of `num_classes` or more (e.g. no face
    found) counts as a miss of the true class."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.minimum(np.asarray(y_pred, np.int64), num_classes)
    sizes = np.array([len(d) for d in draws], np.int64)
    r, k = len(sizes), num_classes
    idx = np.concatenate([np.asarray(d, np.int64) for d in draws])
    cell = np.repeat(np.arange(r), sizes) * k * (k + 1) + y_true[idx] * (k + 1) + y_pred[idx]
    cm = np.bincount(cell, minlength=r * k * (k + 1)).reshape(r, k, k + 1).astype(np.float64)
    tp = np.einsum("rii->ri", cm[:, :, :k])
    true, predicted = cm.sum(2), cm[:, :, :k].sum(1)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    f1 = np.divide(2 * tp, true + predicted, out=np.zeros_like(tp), where=true + predicted > 0)
    present, counted = true > 0, true + predicted > 0
    return {"accuracy": tp.sum(1) / np.maximum(sizes, 1),
            "balanced_accuracy": (recall * present).sum(1) / np.maximum(present.sum(1), 1),
            "macro_f1": (f1 * counted).sum(1) / np.maximum(counted.sum(1), 1)}


def resample_draws(n: int, resamples: int, seed: int, groups=None) -> list[np.ndarray]:
    """Seeded bootstrap draws of `n` samples: `resamples` draws of n samples with replacement, or,
    with `groups` (one key per sample, e.g. the person in each photo), of as many whole groups as
    there are, each drawn group bringing all its samples. Photos of one person are not independent:
    a test set whose 50 disgust photos show one person holds one disgust face, and only the groups'
    draw says how far its numbers could move."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return list(rng.integers(0, n, (resamples, n)))
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    draws = []
    for chosen in rng.integers(0, len(sizes), (resamples, len(sizes))):
        counts = sizes[chosen]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        draws.append(order[np.repeat(starts[chosen], counts) + offsets])
    return draws


def _interval(x: np.ndarray, level: float) -> list[float]:
    tail = (1 - level) / 2 * 100
    return [round(float(v), 4) for v in np.percentile(x, [tail, 100 - tail])]


def bootstrap_intervals(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, resamples: int = 1000,
                        level: float = 0.95, seed: int = 0, groups=None) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (`level`; `resamples` seeded draws, of the samples or of
    whole `groups`: `resample_draws`) of accuracy, balanced accuracy and macro-F1. A test set with
    three photos of a class moves its macro-F1 by whole points: these say how far."""
    n = len(y_true)
    if n == 0:
        return {}
    draws = resample_draws(n, resamples, seed, groups)
    return {name: _interval(x, level) for name, x in resampled_summary(y_true, y_pred, num_classes, draws).items()}


def paired_differences(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, num_classes: int,
                       resamples: int = 1000, level: float = 0.95, seed: int = 0, groups=None) -> dict[str, dict]:
    """Model a minus model b on the same samples, for accuracy, balanced accuracy and macro-F1: the
    difference and its percentile bootstrap interval, both models scored on the same draws (paired:
    the samples both read alike do not widen it, as two separate intervals would; `groups` as in
    `resample_draws`)."""
    n = len(y_true)
    if n == 0:
        return {}
    draws = [np.arange(n)] + resample_draws(n, resamples, seed, groups)
    a, b = (resampled_summary(y_true, pred, num_classes, draws) for pred in (pred_a, pred_b))
    return {name: {"difference": round(float(a[name][0] - b[name][0]), 4),
                   "interval": _interval(a[name][1:] - b[name][1:], level)} for name in a}


# Balanced accuracy that chooses anything (checkpoints, class offsets) averages the recall of the
# classes with at least this many validation images: web_faces val holds 2 fear photos, whose
# recall would be a coin toss.
BALANCE_MIN_SUPPORT = 10


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, min_support: int = 1) -> float:
    """Mean recall over the classes with at least `min_support` true samples."""
    pc = per_class(confusion_matrix(y_true, y_pred, num_classes))
    counted = pc["support"] >= max(1, min_support)
    return float(pc["recall"][counted].mean()) if counted.any() else 0.0


def softmax(logits: np.ndarray, temperature: float = 1.0, bias=None) -> np.ndarray:
    """softmax(logits / temperature + bias), row by row."""
    z = np.asarray(logits, np.float64) / temperature
    if bias is not None:
        z = z + np.asarray(bias, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
