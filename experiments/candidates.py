"""Compare training runs as shipped models would be: each run's (and, with --ensemble, the mean of
their logits') validation parts scored by repeated stratified 5-fold cross-validation inside the
validation parts, without offsets and with the shipped offset rule fitted on the other folds
(`experiments/class_bias.py`). The candidate with the highest held-out mean balanced accuracy is
the one validation prefers. Each candidate is also scored once on the test parts with the offsets
fitted on the whole validation parts (reported, never used to choose).

Usage: python experiments/candidates.py RUN [RUN ...] [--ensemble] [--out experiments/results/candidates]
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict

import numpy as np

from class_bias import offsets, scores
from emoscope.data.dataset import run_sources
from emoscope.evaluate.calibration import fit_temperature
from emoscope.labels import VALENCE
from emoscope.models.checkpoint import load_run_model, predict_logits
from emoscope.train.config import TrainConfig


def run_logits(run: str) -> tuple[dict, list[str], list[str]]:
    """{split: (logits, labels, source index)} for val and test, the source names, the classes."""
    model, cfg, classes = load_run_model(run, True)
    sources = run_sources(asdict(TrainConfig.from_dict(cfg)))
    out = {}
    for split in ("val", "test"):
        parts = [s.data.split(split) for s in sources]
        out[split] = (np.concatenate([predict_logits(model, p.images, channels_last=False, bf16=False) for p in parts]),
                      np.concatenate([p.labels for p in parts]),
                      np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)]))
    return out, [s.name for s in sources], classes


def main(args) -> dict:
    from sklearn.model_selection import RepeatedStratifiedKFold
    logits = {}
    for run in args.runs:
        logits[run], names, classes = run_logits(run)
    candidates = {run: [run] for run in args.runs}
    if args.ensemble:
        candidates["mean of " + " + ".join(os.path.basename(r.rstrip("/")) for r in args.runs)] = args.runs
    neutral, negative = classes.index("neutral"), [i for i, c in enumerate(classes) if VALENCE.get(c, 0.0) < 0]
    result = {}
    for name, members in candidates.items():
        z = np.mean([logits[r]["val"][0] for r in members], 0)
        y, g = logits[members[0]]["val"][1:]
        if any((logits[r]["val"][1] != y).any() for r in members):
            raise SystemExit(f"{name}: the runs do not share their validation parts")
        t = fit_temperature(z, y)
        folds = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=args.repeats, random_state=0).split(z, g * 100 + y))
        result[name] = {}
        for rule in ("none", "grid"):
            cv = [scores(z[h], y[h], g[h], names, t, offsets(rule, z[f], y[f], g[f], t), neutral, negative) for f, h in folds]
            result[name]["cross_validation_" + rule] = {k: round(float(np.mean([c[k] for c in cv])), 4) for k in cv[0]}
        zt = np.mean([logits[r]["test"][0] for r in members], 0)
        yt, gt = logits[members[0]]["test"][1:]
        b = offsets("grid", z, y, g, t)
        result[name]["test_grid"] = {k: round(v, 4) for k, v in scores(zt, yt, gt, names, t, b, neutral, negative).items()}
        print(name, json.dumps(result[name]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--ensemble", action="store_true", help="also score the mean of the runs' logits")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="experiments/results/candidates")
    main(p.parse_args())
