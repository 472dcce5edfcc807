"""A first reading of the ensemble of the shipped ensemble with the Lite0 candidate (issue 40), from
their exported files, before any such ensemble is trained and exported: on FER+ PublicTest
(validation, majority labels), clean and under the robustness suite, the mean of the logits of the
three networks (the shipped file's logits are already the mean of its two, so it weighs 2 to the
candidate's 1) read at 48 px as `emoscope ensemble` would read them, the candidate's input enlarged
to 96 px bilinearly as the data loader enlarges FER2013's faces. No class offsets (each file's own
are left out), temperature fitted on the same part (it does not move any prediction). JSON on stdout.

Usage: python experiments/ensemble_with_lite0.py CANDIDATE.onnx [SHIPPED.onnx]
"""

from __future__ import annotations

import json
import os
import sys

import cv2
import numpy as np

from emoscope.data import load_dataset
from emoscope.evaluate.calibration import fit_temperature
from emoscope.evaluate.evaluator import Scorer
from emoscope.evaluate.metrics_report import score
from emoscope.evaluate.robustness import robustness
from emoscope.metrics import softmax

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def main() -> None:
    candidate, shipped = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "src/emoscope/assets/expression-int8.onnx")
    small, large = Scorer(shipped, threads=2), Scorer(candidate, threads=2)
    ds = load_dataset(os.path.join(SHARED, "datasets", "fer2013.zip"), small.size, "gray", verbose=False)
    part = small.splits(ds.with_votes(os.path.join(SHARED, "datasets", "fer2013-ferplus-votes.csv"))).split("val")
    part = part.select(part.labels < len(small.classes))
    images, labels = part.images, part.labels

    def enlarged(x: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(im, (large.size, large.size), interpolation=cv2.INTER_LINEAR) for im in x])

    readers = {"shipped": small.logits, "candidate": lambda x: large.logits(enlarged(x)),
               "ensemble": lambda x: (2 * small.logits(x) + large.logits(enlarged(x))) / 3}
    out = {"data": "FER+ PublicTest (majority labels)", "n": int(len(labels)), "input_px": small.size}
    for name, logits_of in readers.items():
        logits = logits_of(images)
        temperature = fit_temperature(logits, labels)
        r = score(softmax(logits, temperature), labels, small.classes)
        suite = robustness(logits_of, images, labels, small.classes, temperature)
        out[name] = {"accuracy": round(r["accuracy"], 4), "macro_f1": round(r["macro_f1"], 4),
                     "balanced_accuracy": round(r["balanced_accuracy"], 4),
                     "recall": {c: round(v["recall"], 3) for c, v in r["per_class"].items()},
                     "suite_mean": suite["mean"]}
        print(f"{name}: accuracy {r['accuracy']:.1%}, macro-F1 {r['macro_f1']:.1%}, suite macro-F1 "
              f"{suite['mean']['macro_f1']:.1%}", file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
