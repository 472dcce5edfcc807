#!/usr/bin/env bash
# Issue 40's label standards, measured where they cost least: the shipped recipe's first
# refinement (configs/shipped/expression-ferplus-refine.json, 12 epochs), started from the same
# first stage of the leave-one-source-out twin (FER+ alone, web_faces never seen), once on FER+'s
# votes and once under each other standard for the soft targets:
#   own3          FER2013's own label joins the ten FER+ votes as three more votes
#   neutral-half  each FER+ neutral vote counts half (a lower neutral share)
# Each is checked by experiments/leave_one_source_out.sh on web_faces val, the standards paired
# photo by photo with the refinement on FER+'s votes. Every step resumes or is skipped when done.
# Usage: experiments/label_standards.sh LOSO_DIR OUT_DIR   (make loso-labels)
set -euo pipefail
loso=$1; out=$2
first_stage=$loso/expression-ferplus-long/last.pt
declare -A flags=([own3]="--own-label-votes 3" [neutral-half]="--neutral-vote-weight 0.5")
refine() {  # refine RUN_DIR [FLAGS...]
  local run=$1; shift
  [ -f "$run/summary.json" ] || .venv/bin/emoscope train --config configs/shipped/expression-ferplus-refine.json \
    --init "$first_stage" --primary-only --out "$run" --resume "$@"
}
baseline=$loso/expression-ferplus-long-refine
refine "$baseline"
experiments/leave_one_source_out.sh "$baseline" "$out/ferplus-votes"
for standard in own3 neutral-half; do
  run=$loso/expression-ferplus-long-refine-$standard
  # shellcheck disable=SC2086  # the flags split into words on purpose
  refine "$run" ${flags[$standard]}
  experiments/leave_one_source_out.sh "$run" "$out/$standard" "$baseline"
done
