"""Which rule for the per-class logit offsets (`class_bias`) holds up on photos it was not fitted on?
The offsets are fitted on the validation parts (FER+ PublicTest by majority rule, web_faces val
faces), so a rule that fits those few hundred rare-class photos too closely looks best exactly
where it was fitted. This compares, by repeated stratified 5-fold cross-validation inside the
validation parts (fit on four folds, score the fifth), the rules:
- none: no offsets;
- grid: coordinate ascent on the mean balanced accuracy (a step function of the offsets);
- balanced_nll: the offsets minimising the mean over sources of the class-balanced negative
  log-likelihood (convex and smooth, so small parts move it little);
- grid_primary: the grid rule fitted on the primary source alone (FER+ PublicTest: thousands of
  people), so that web_faces val, whose rarer classes are one or two people each, only scores it;
- grid_primary_x0.3, grid_primary_x0.6: those offsets shrunk towards zero (times 0.3, 0.6);
- grid_primary_bagged: the mean of the grid_primary offsets fitted on BAGS bootstrap resamples of
  the primary source (a step function of the offsets, fitted once, follows the few rare-class
  photos of its part; the mean over resamples does less so);
- prior: minus the log of the mean predicted probability of each class over the sources (the
  correction from the model's own prior to a uniform one; no labels used).
The folds are drawn twice: by photo, and by person (no person in two folds; web_faces' rarer
classes are one or two people each in its validation part, so by photo a rule is scored on the
same people it was fitted on). Scores per rule: held-out balanced accuracy per source and their mean, accuracy, and the share of
web_faces neutral faces read as a negative expression. Then, once, each rule fitted on the whole
validation parts is scored on the test parts (reported, never used to choose).

Usage: python experiments/class_bias.py --run ../runs/NAME [NAME ...] [--out experiments/results/class-bias]
(several runs: their logit ensemble, the mean of their logits)
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import asdict

import numpy as np

from emoscope.data.dataset import run_sources
from emoscope.evaluate.calibration import fit_class_bias, fit_temperature
from emoscope.labels import VALENCE
from emoscope.metrics import BALANCE_MIN_SUPPORT, balanced_accuracy, softmax
from emoscope.models.checkpoint import load_run_model, predict_logits
from emoscope.train.config import TrainConfig

RULES = ("none", "grid", "grid_primary", "grid_primary_x0.3", "grid_primary_x0.6", "grid_primary_bagged",
         "balanced_nll", "prior")
BAGS = 16


def offsets(rule: str, z: np.ndarray, y: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    if rule == "none":
        return np.zeros(z.shape[1])
    if rule == "grid":
        return np.asarray(fit_class_bias(z, y, temperature, groups))
    if rule == "grid_primary":
        return np.asarray(fit_class_bias(z[groups == 0], y[groups == 0], temperature, groups[groups == 0]))
    if rule.startswith("grid_primary_x"):
        return float(rule.removeprefix("grid_primary_x")) * offsets("grid_primary", z, y, groups, temperature)
    if rule == "grid_primary_bagged":
        rng, primary = np.random.default_rng(0), np.flatnonzero(groups == 0)
        resamples = [rng.choice(primary, len(primary)) for _ in range(BAGS)]
        return np.mean([offsets("grid_primary", z[i], y[i], groups[i], temperature) for i in resamples], axis=0)
    parts = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    if rule == "prior":
        prior = np.mean([softmax(z[i], temperature).mean(0) for i in parts], axis=0)
        b = -np.log(prior)
        return b - b.mean()
    return balanced_nll_bias(z / temperature, y, parts)


def balanced_nll_bias(z: np.ndarray, labels: np.ndarray, parts: list[np.ndarray], ridge: float = 1e-3) -> np.ndarray:
    """Newton's method on the mean over `parts` of the class-balanced NLL of softmax(z + b)
    (classes with fewer than BALANCE_MIN_SUPPORT samples in a part left out of it)."""
    k = z.shape[1]
    weight = np.zeros(len(labels))
    for idx in parts:
        counts = np.bincount(labels[idx], minlength=k)
        counted = counts >= BALANCE_MIN_SUPPORT
        w = np.where(counted, 1.0 / np.maximum(counts, 1), 0.0) / max(counted.sum(), 1) / len(parts)
        weight[idx] = w[labels[idx]]
    onehot, b = np.eye(k)[labels], np.zeros(k)
    for _ in range(50):
        p = softmax(z, 1.0, b)
        grad = (weight[:, None] * (p - onehot)).sum(0) + 2 * ridge * b
        hess = np.diag((weight[:, None] * p).sum(0)) - np.einsum("n,ni,nj->ij", weight, p, p) + 2 * ridge * np.eye(k)
        step = np.linalg.solve(hess, grad)
        b -= step
        if np.abs(step).max() < 1e-6:
            break
    return b - b.mean()


def scores(z, y, groups, names, temperature, b, neutral, negative) -> dict:
    pred = (z / temperature + b).argmax(1)
    out = {}
    for g, name in enumerate(names):
        i = groups == g
        out[f"bal_{name}"] = balanced_accuracy(y[i], pred[i], z.shape[1], BALANCE_MIN_SUPPORT)
        out[f"acc_{name}"] = float((pred[i] == y[i]).mean())
    out["bal_mean"] = float(np.mean([out[f"bal_{n}"] for n in names]))
    web = (groups == len(names) - 1) & (y == neutral)
    out["web_neutral_as_negative"] = float(np.isin(pred[web], negative).mean())
    return out


def person_ids(ids: np.ndarray, named: bool) -> np.ndarray:
    """Who is in each photo: the file name without its trailing number for a photo source (the
    grouping of `configs/splits/web-faces.csv`), every image its own person otherwise (FER2013)."""
    if not named:
        return np.array([f"#{i}" for i in ids])
    return np.array([re.match(r"^(.*?)_?[0-9]*$", os.path.splitext(os.path.basename(str(i)))[0]).group(1) for i in ids])


def run_parts(run: str) -> tuple[dict, list[str], list[str]]:
    """A run's logits on the validation and test parts of its sources, with labels, source index
    and person of each image; the sources' names; the classes."""
    model, cfg, classes = load_run_model(run, True)
    sources = run_sources(asdict(TrainConfig.from_dict(cfg)))
    parts = {}
    for split in ("val", "test"):
        split_parts = [s.data.split(split) for s in sources]
        parts[split] = (
            np.concatenate([predict_logits(model, p.images, channels_last=False, bf16=False) for p in split_parts]),
            np.concatenate([p.labels for p in split_parts]),
            np.concatenate([np.full(len(p), i) for i, p in enumerate(split_parts)]),
            np.concatenate([person_ids(p.ids, i > 0) for i, p in enumerate(split_parts)]))
    return parts, [s.name for s in sources], classes


def ensemble_parts(runs: list[str]) -> tuple[dict, list[str], list[str]]:
    """`run_parts` of one run, or of several scored on the same images: the mean of their logits."""
    each = [run_parts(r) for r in runs]
    parts, names, classes = each[0]
    for other, other_names, other_classes in each[1:]:
        if other_names != names or other_classes != classes or any(
                not np.array_equal(other[s][k], parts[s][k]) for s in parts for k in (1, 3)):
            raise SystemExit("the runs do not score the same images with the same classes")
    return {s: (np.mean([e[0][s][0] for e in each], axis=0), *parts[s][1:]) for s in parts}, names, classes


def main(args) -> dict:
    from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold
    parts, names, classes = ensemble_parts(args.run)
    neutral, negative = classes.index("neutral"), [i for i, c in enumerate(classes) if VALENCE.get(c, 0.0) < 0]
    z, y, g, people = parts["val"]
    t = fit_temperature(z, y)
    result = {"run": args.run if len(args.run) > 1 else args.run[0], "temperature": t, "sources": names}
    by_photo = RepeatedStratifiedKFold(n_splits=5, n_repeats=args.repeats, random_state=0).split(z, g * 100 + y)
    by_person = [f for r in range(args.repeats)
                 for f in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=r).split(z, g * 100 + y, people)]
    for name, folds in (("cross_validation", by_photo), ("cross_validation_by_person", by_person)):
        cv = {r: [] for r in RULES}
        for fit_i, held_i in folds:
            for r in RULES:
                b = offsets(r, z[fit_i], y[fit_i], g[fit_i], t)
                cv[r].append(scores(z[held_i], y[held_i], g[held_i], names, t, b, neutral, negative))
        result[name] = {r: {k: round(float(np.nanmean([s[k] for s in cv[r]])), 4) for k in cv[r][0]} for r in RULES}
    result["test"] = {}
    zt, yt, gt, _ = parts["test"]
    for r in RULES:
        b = offsets(r, z, y, g, t)
        result["test"][r] = {"offsets": [round(float(v), 2) for v in b],
                             **{k: round(v, 4) for k, v in scores(zt, yt, gt, names, t, b, neutral, negative).items()}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, nargs="+", help="a run folder, or several: the mean of their logits")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="experiments/results/class-bias")
    main(p.parse_args())
