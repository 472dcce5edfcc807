"""Temperature scaling and expected calibration error (NumPy only)."""

from __future__ import annotations

import numpy as np

from ..metrics import softmax


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
