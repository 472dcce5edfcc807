#!/usr/bin/env bash
# Score a candidate expression model against the shipped one, the same way, in one run:
# model-only on FER+ PrivateTest (majority labels) and on FER+ PublicTest under the robustness
# suite (and the head turn made from each face's mesh); end to end through the Analyzer on
# web_faces test; the sample clip's audience at 0:07-0:09; the classifier's speed. The candidate's
# FER+ PrivateTest and web_faces test scores hold its lead over the shipped model photo by photo
# (`against`: differences with paired bootstrap intervals).
# Usage: experiments/evaluate_candidate.sh CANDIDATE.onnx OUT_DIR
# A result already in OUT_DIR is kept (a run stopped part-way goes on; the shipped model's scores
# serve a second candidate scored into the same folder).
set -euo pipefail
cand=$1; out=$2
shared=${EMOSCOPE_SHARED:-../shared}
mkdir -p "$out"
shipped=src/emoscope/assets/expression-int8.onnx
. "$(dirname "$0")/keep.sh"
for name in shipped candidate; do
  model=$shipped; against=(); [ $name = candidate ] && { model=$cand; against=(--against "$shipped"); }
  keep "$out/$name.ferplus-test.json" .venv/bin/emoscope evaluate --model "$model" "${against[@]}" \
    --data "$shared/datasets/fer2013.zip" --labels ferplus --split test
  keep "$out/$name.ferplus-val-robustness.json" .venv/bin/emoscope evaluate --model "$model" \
    --data "$shared/datasets/fer2013.zip" --labels ferplus --split val --robustness \
    --mesh-model "$shared/models/face_landmarker.task"
  keep "$out/$name.web-test-pipeline.json" .venv/bin/emoscope evaluate --pipeline --model "$model" "${against[@]}" \
    --data "$shared/datasets/web_faces.zip" --split-file configs/splits/web-faces.csv --split test
  keep "$out/$name.clip-audience.json" .venv/bin/python experiments/clip_audience.py --model "$model"
done
.venv/bin/python - "$cand" > "$out/speed.json" <<'PY'
import json, sys, time
import numpy as np
from emoscope.runtime import ExpressionClassifier


def faces_per_second(model: str, batch: int = 256, rounds: int = 12) -> float:
    """Face crops at the model's own input size through the classifier on 2 threads."""
    clf = ExpressionClassifier(model, 2)
    h, w = clf.meta.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, h, w), dtype=np.uint8)
    clf.predict(crops)
    t = time.perf_counter()
    for _ in range(rounds):
        clf.predict(crops)
    return rounds * batch / (time.perf_counter() - t)


models = (("shipped", "src/emoscope/assets/expression-int8.onnx"), ("candidate", sys.argv[1]))
print(json.dumps({f"{name}_faces_per_s_2_threads": round(max(faces_per_second(m) for _ in range(3)))
                  for name, m in models}))
PY
