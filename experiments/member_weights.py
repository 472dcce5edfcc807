"""How the shipped default's three networks should weigh, and what each subset of them is worth
(issue 40: the robustness suite's +5 and the video path's speed): every network's logits are read
from the shipped file itself (its members' outputs exposed, nothing retrained), on FER+ PublicTest
clean and under the robustness suite, and on web_faces val (the detector's face crops); then each
weighting is scored as the export would calibrate it: temperature fitted on both validation parts,
class offsets for macro-F1 within +-1 logit fitted on FER+ PublicTest. Validation parts only. JSON
on stdout (`experiments/results/member-weights/`), progress on stderr.

Usage: python experiments/member_weights.py [SHIPPED.onnx]
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

from emoscope.contract import CropRule, normalize_u8
from emoscope.data import load_dataset
from emoscope.evaluate.calibration import fit_class_bias, fit_temperature
from emoscope.evaluate.evaluator import Scorer
from emoscope.evaluate.metrics_report import score
from emoscope.evaluate.robustness import DEGRADATIONS, STRENGTHS, degraded
from emoscope.metrics import softmax

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
# The joined file's member outputs (`export.onnx.join_graphs` prefixes: m0 the Lite0 network, m1 the
# two-CNN file whose ReduceMean averages its members).
MEMBERS = {"lite0": "m0/logits", "cnn_a": "m1//members.0/head/head.3/Gemm_output_0",
           "cnn_b": "m1//members.1/head/head.3/Gemm_output_0"}
WEIGHTINGS = {  # lite0, cnn_a, cnn_b; (1, 1, 1) is the shipped rule
    "shipped (1:1:1)": (1, 1, 1), "lite0 x1.5": (1.5, 1, 1), "lite0 x2": (2, 1, 1), "lite0 x3": (3, 1, 1),
    "lite0 + cnn_a": (1, 1, 0), "lite0 + cnn_b": (1, 0, 1), "lite0 x2 + cnn_a": (2, 1, 0),
    "lite0 x2 + cnn_b": (2, 0, 1), "lite0 alone": (1, 0, 0), "the two CNNs": (0, 1, 1)}


class MemberReader:
    """The shipped file with every member's logits as outputs."""

    def __init__(self, path: str):
        proto = onnx.load(path)
        for name in MEMBERS.values():
            proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self.session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """[members, N, classes] for uint8 faces."""
        x = normalize_u8(images)
        outs = [self.session.run(list(MEMBERS.values()), {"input": x[i:i + 256]}) for i in range(0, len(x), 256)]
        return np.stack([np.concatenate([o[k] for o in outs]) for k in range(len(MEMBERS))])


def combine(members: np.ndarray, weights) -> np.ndarray:
    w = np.asarray(weights, np.float32)
    return np.tensordot(w / w.sum(), members, axes=1)


def main() -> None:
    shipped = sys.argv[1] if len(sys.argv) > 1 else "src/emoscope/assets/expression.onnx"
    meta = Scorer(shipped, threads=2)
    classes, read = meta.classes, MemberReader(shipped)
    ds = load_dataset(os.path.join(SHARED, "datasets", "fer2013.zip"), meta.size, "gray", verbose=False)
    fer = meta.splits(ds.with_votes(os.path.join(SHARED, "datasets", "fer2013-ferplus-votes.csv"))).split("val")
    fer = fer.select(fer.labels < len(classes))
    web = load_dataset(os.path.join(SHARED, "datasets", "web_faces.zip"), meta.size, "gray", verbose=False,
                       faces=CropRule.from_dict({"margin": 0.1, "square": True, "equalize": False}))
    web = web.with_split_file("configs/splits/web-faces.csv").relabeled(classes).split("val")
    web = web.select(web.labels < len(classes))
    clean_fer, clean_web = read(fer.images), read(web.images)
    suite = {}
    for kind in DEGRADATIONS:
        for strength in STRENGTHS:
            suite[kind, strength] = read(degraded(fer.images, kind, strength))
            print(f"suite: {kind} {strength:.2f}", file=sys.stderr, flush=True)
    out = {"data": {"fer_plus_public_test": int(len(fer.labels)), "web_faces_val_faces": int(len(web.labels))},
           "members": list(MEMBERS), "weightings": {}}
    for name, weights in WEIGHTINGS.items():
        f, w = combine(clean_fer, weights), combine(clean_web, weights)
        temperature = fit_temperature(np.concatenate([f, w]), np.concatenate([fer.labels, web.labels]))
        bias = fit_class_bias(f, fer.labels, temperature, np.zeros(len(f), int), objective="macro_f1", cap=1.0)
        row = {"weights": dict(zip(MEMBERS, weights)), "temperature": round(float(temperature), 4),
               "class_bias": [round(float(b), 2) for b in bias]}
        for part, logits, labels in (("fer_plus_val", f, fer.labels), ("web_faces_val", w, web.labels)):
            for rule, b in (("no_offsets", None), ("offsets", bias)):
                r = score(softmax(logits, temperature, b), labels, classes)
                row[f"{part}/{rule}"] = {k: round(r[k], 4) for k in ("accuracy", "macro_f1", "balanced_accuracy")}
        for rule, b in (("no_offsets", None), ("offsets", bias)):
            f1 = [score(softmax(combine(m, weights), temperature, b), fer.labels, classes)["macro_f1"]
                  for m in suite.values()]
            row[f"suite_macro_f1/{rule}"] = round(float(np.mean(f1)), 4)
        out["weightings"][name] = row
        print(f"{name}: FER+ val {row['fer_plus_val/offsets']}, web val {row['web_faces_val/offsets']}, "
              f"suite {row['suite_macro_f1/offsets']:.1%}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
