#!/usr/bin/env bash
# Record a shipped expression model's headline numbers in its own metadata (`emoscope evaluate
# --record`: served by /v1/model and /model, shown in the model card): FER+ PrivateTest and
# PublicTest and FER2013's own labels model-only with flip, web_faces val and test end to end with
# and without the face mesh. Each result is also kept as JSON in OUT_DIR.
# Usage: experiments/record_metrics.sh MODEL.onnx OUT_DIR
set -euo pipefail
model=$1; out=$2
shared=${EMOSCOPE_SHARED:-../shared}
mkdir -p "$out"
fer=(--data "$shared/datasets/fer2013.zip" --tta flip --record)
web=(--pipeline --data "$shared/datasets/web_faces.zip" --split-file configs/splits/web-faces.csv --record)
run() {  # run NAME ARGS...: one evaluation into OUT_DIR/NAME.json
  local name=$1; shift
  .venv/bin/emoscope evaluate --model "$model" "$@" > "$out/$name.json.tmp" && mv "$out/$name.json.tmp" "$out/$name.json"
}
run ferplus-test-flip "${fer[@]}" --labels ferplus --split test
run ferplus-val-flip "${fer[@]}" --labels ferplus --split val
run fer2013-test-flip "${fer[@]}" --labels own --split test
for split in test val; do
  run "web-$split-pipeline" "${web[@]}" --split "$split"
  run "web-$split-pipeline-mesh" "${web[@]}" --split "$split" --mesh
done
