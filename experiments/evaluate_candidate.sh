#!/usr/bin/env bash
# Score a candidate expression model against the shipped one, the same way, in one run:
# model-only on FER+ PrivateTest (majority labels) and on FER+ PublicTest under the robustness
# suite; end to end through the Analyzer on web_faces test; the sample clip's audience at 0:07-0:09;
# the classifier's speed. Usage: experiments/evaluate_candidate.sh CANDIDATE.onnx OUT_DIR
set -euo pipefail
cand=$1; out=$2
shared=${EMOSCOPE_SHARED:-../shared}
mkdir -p "$out"
shipped=src/emoscope/assets/expression-int8.onnx
for name in shipped candidate; do
  model=$shipped; [ $name = candidate ] && model=$cand
  .venv/bin/emoscope evaluate --model "$model" --data "$shared/datasets/fer2013.zip" --labels ferplus --split test \
    > "$out/$name.ferplus-test.json"
  .venv/bin/emoscope evaluate --model "$model" --data "$shared/datasets/fer2013.zip" --labels ferplus --split val \
    --robustness > "$out/$name.ferplus-val-robustness.json"
  .venv/bin/emoscope evaluate --pipeline --model "$model" --data "$shared/datasets/web_faces.zip" \
    --split-file configs/splits/web-faces.csv --split test > "$out/$name.web-test-pipeline.json"
  .venv/bin/python experiments/clip_audience.py --model "$model" > "$out/$name.clip-audience.json"
done
.venv/bin/python - "$cand" > "$out/speed.json" <<'PY'
import json, sys
sys.path.insert(0, "benchmarks")
from bench_inference import classifier_rate
rates = {name: [classifier_rate(model, 2) for _ in range(3)]
         for name, model in (("shipped", "src/emoscope/assets/expression-int8.onnx"), ("candidate", sys.argv[1]))}
print(json.dumps({f"{name}_faces_per_s_2_threads": round(max(r)) for name, r in rates.items()}))
PY
