#!/usr/bin/env bash
# Score a candidate expression model on the validation parts only (the parts candidates are
# chosen on): FER+ PublicTest model-only with flip, web_faces val end to end through the Analyzer,
# and FER+ PublicTest under the robustness suite with the mesh-made head turn; then print it beside
# the shipped default and `fast` (experiments/compare_validation.py). A candidate that passes goes
# on to experiments/evaluate_candidate.sh (the test parts).
# Usage: experiments/validate_candidate.sh CANDIDATE.onnx NAME OUT_DIR
# A result already in OUT_DIR is kept (a run stopped part-way goes on).
set -euo pipefail
model=$1; name=$2; out=$3
shared=${EMOSCOPE_SHARED:-../shared}
mkdir -p "$out"
. "$(dirname "$0")/keep.sh"
fer=(--model "$model" --data "$shared/datasets/fer2013.zip" --labels ferplus --split val)
keep "$out/$name.ferplus-val-flip.json" .venv/bin/emoscope evaluate "${fer[@]}" --tta flip
keep "$out/$name.web-val-pipeline.json" .venv/bin/emoscope evaluate --pipeline --model "$model" \
  --data "$shared/datasets/web_faces.zip" --split-file configs/splits/web-faces.csv --split val
keep "$out/$name.ferplus-val-robustness.json" .venv/bin/emoscope evaluate "${fer[@]}" --robustness \
  --mesh-model "$shared/models/face_landmarker.task"
.venv/bin/python experiments/compare_validation.py "$name=$out"
