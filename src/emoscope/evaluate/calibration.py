"""Temperature scaling and expected calibration error (NumPy only)."""

from __future__ import annotations

import numpy as np

from ..labels import VALENCE_LABELS, ValenceRule, class_valence, valence_score
from ..metrics import BALANCE_MIN_SUPPORT, balanced_accuracy, softmax, summary


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T): golden-section search on log T."""
    lo, hi = np.log(0.05), np.log(20.0)
    phi = (np.sqrt(5) - 1) / 2
    a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
    fa, fb = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - phi * (hi - lo)
            fa = nll(logits, labels, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + phi * (hi - lo)
            fb = nll(logits, labels, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, np.ndarray | float]:
    """Per-bin confidence, accuracy and count of the top-1 prediction, and the ECE."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    conf_sum = np.bincount(which, conf, minlength=bins)
    acc_sum = np.bincount(which, correct, minlength=bins)
    nz = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.zeros(bins), where=nz)
    mean_acc = np.divide(acc_sum, count, out=np.zeros(bins), where=nz)
    ece = float((np.abs(mean_conf - mean_acc) * count).sum() / max(count.sum(), 1))
    return {"edges": edges, "confidence": mean_conf, "accuracy": mean_acc, "count": count, "ece": ece}


def valence_labels(scores: np.ndarray, rule: ValenceRule) -> np.ndarray:
    """`rule.label` over an array of valence scores."""
    scores = np.asarray(scores, np.float64)
    return np.where(scores > rule.positive, "positive", np.where(scores < -rule.negative, "negative", "neutral"))


def valence_agreement(pred, truth) -> dict:
    """How often each face's valence label matches the valence of its true expression: overall,
    per true valence, and balanced (the mean over the valences present)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    per = {v: float((pred[truth == v] == v).mean()) for v in VALENCE_LABELS if (truth == v).any()}
    return {"agreement": float((pred == truth).mean()) if len(truth) else 0.0,
            "balanced": float(np.mean(list(per.values()))) if per else 0.0, "per_valence": per}


def fit_valence(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> ValenceRule:
    """The thresholds (each from 0.05 to 0.60 in steps of 0.025) that maximise the balanced
    agreement between the valence label and the valence of the true expression on labelled
    faces; ties go to the thresholds nearest the defaults."""
    scores = np.array([valence_score(dict(zip(classes, p))) for p in probs])
    truth = [class_valence(classes[i]) for i in labels]
    grid = np.round(np.arange(0.05, 0.6001, 0.025), 3)
    default = ValenceRule()
    best, best_key = default, None
    for pos in grid:
        for neg in grid:
            rule = ValenceRule(float(pos), float(neg))
            key = (round(valence_agreement(valence_labels(scores, rule), truth)["balanced"], 6),
                   -abs(pos - default.positive) - abs(neg - default.negative))
            if best_key is None or key > best_key:
                best, best_key = rule, key
    return best


BIAS_OBJECTIVES = ("balanced", "macro_f1")


def fit_class_bias(logits: np.ndarray, labels: np.ndarray, temperature: float, groups: np.ndarray,
                   grid: np.ndarray = np.round(np.arange(-2.0, 2.0001, 0.1), 2), passes: int = 4,
                   objective: str = "balanced", cap: float | None = None) -> list[float]:
    """Per-class offsets b for softmax(logits / T + b) that maximise the mean over `groups` (e.g.
    the validation parts of each source) of the balanced accuracy (or, with
    `objective="macro_f1"`, the macro-F1: a false "disgust" costs as much as a missed one), by
    coordinate ascent over `grid` (within +-`cap` when given); ties keep the offset nearest 0.
    Returns all zeros when nothing helps."""
    if objective not in BIAS_OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(BIAS_OBJECTIVES)}, not {objective!r}")
    z = np.asarray(logits, np.float64) / temperature
    k = z.shape[1]
    parts = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    if cap is not None:
        grid = grid[np.abs(grid) <= cap + 1e-9]

    def objective_of(b: np.ndarray) -> float:
        pred = (z + b).argmax(1)
        if objective == "macro_f1":
            return float(np.mean([summary(labels[i], pred[i], k)["macro_f1"] for i in parts]))
        return float(np.mean([balanced_accuracy(labels[i], pred[i], k, BALANCE_MIN_SUPPORT) for i in parts]))

    bias = np.zeros(k)
    best = objective_of(bias)
    for _ in range(passes):
        changed = False
        for c in range(k):
            for v in sorted(grid, key=abs):
                trial = bias.copy()
                trial[c] = v
                score = objective_of(trial)
                if score > best + 1e-9:
                    best, bias, changed = score, trial, True
        if not changed:
            break
    return [float(b) for b in bias]
