"""`emoscope evaluate`."""

from __future__ import annotations

import argparse
import json
import time

from ..contract import ModelMetadataError
from ..runtime.assets import ModelNotFoundError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="run folder (best.pt) or an ONNX file; with --pipeline an ONNX file or an "
                   "embedded model name (default: the shipped model)")
    p.add_argument("--data", help="dataset (default: the run's training data)")
    p.add_argument("--split", default="test", help="train | val | test | all (default test)")
    p.add_argument("--pipeline", action="store_true",
                   help="end to end: each photo through the Analyzer (detector, crop, classifier); the largest "
                        "face is the prediction and a photo with no face found counts as wrong")
    p.add_argument("--split-file", help="the splits as `emoscope data split` wrote them (e.g. "
                   "configs/splits/web-faces.csv)")
    p.add_argument("--detector-model", help="YuNet ONNX path for --pipeline (else $EMOSCOPE_YUNET_MODEL, cache, download)")
    p.add_argument("--mesh", action="store_true",
                   help="--pipeline with the face mesh on: where the model has a blendshape expert, the expression "
                        "is read from the image and the blendshapes together")
    p.add_argument("--mesh-model", help="face_landmarker.task for --mesh (else $EMOSCOPE_LANDMARKER_MODEL, cache, "
                   "download), and for --robustness's head turn from the face mesh (else the variable or the cache)")
    p.add_argument("--labels", default="own", choices=["own", "ferplus"],
                   help="model-only: the dataset's own labels, or FER+'s majority rule for FER2013 images")
    p.add_argument("--votes", help="FER+ votes file for --labels ferplus (default: fer2013-ferplus-votes.csv "
                   "beside --data)")
    p.add_argument("--tta", default="none", choices=["none", "flip"], help="test-time augmentation")
    p.add_argument("--robustness", action="store_true",
                   help="model-only: also score the split under each degradation of the robustness suite (head turn, "
                        "dim light, blur, small face, noise, JPEG, occlusion) at three strengths, and the head turn "
                        "made from each face's mesh where a face landmarker is found")
    p.add_argument("--against", metavar="MODEL",
                   help="also score MODEL the same way on the same images (model-only: without the robustness "
                        "suite) and report --model minus MODEL: accuracy, balanced accuracy and macro-F1, each with a "
                        "paired 95%% bootstrap interval (both models on the same resamples)")
    p.add_argument("--out", help="folder for metrics.json and report.html")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--record", action="store_true",
                   help="store the headline numbers in the evaluated ONNX file's metadata (`metrics`, served by "
                        "/v1/model), under <data>_<split>[_pipeline][_mesh][_flip]")


def run(args) -> int:
    if args.pipeline:
        return run_pipeline(args)
    if not args.model:
        raise SystemExit("emoscope evaluate: give --model (or --pipeline to score the shipped model end to end)")
    from .evaluator import evaluate
    try:
        r = evaluate(args.model, args.data, args.split, args.tta, args.out, args.threads, args.split_file,
                     args.labels, args.votes, args.robustness, args.mesh_model)
        if args.against:
            r["against"] = compared(r, evaluate(args.against, r["data"], args.split, args.tta, None, args.threads,
                                                args.split_file, args.labels, args.votes), args.against)
    except ModelMetadataError:
        raise  # a --model that is not self-describing: the command line is wrong (exit 2, as any model)
    except ValueError as exc:
        raise SystemExit(f"emoscope evaluate: {exc}")
    keys = ("n", "accuracy", "balanced_accuracy", "top2_accuracy", "macro_f1", "weighted_f1", "macro_auc", "ece",
            "temperature", "images_per_second", "excluded_classes", "intervals")
    out = {k: r[k] for k in keys}
    out["recall"] = {c: round(m["recall"], 4) for c, m in r["per_class"].items()}
    out.update({k: r[k] for k in ("robustness", "against") if k in r})
    if args.record:
        record(args, args.model, out, pipeline=False)
    print(json.dumps(out, indent=1))
    return 0


def run_pipeline(args) -> int:
    from .pipeline import evaluate_pipeline
    if not args.data:
        raise SystemExit("emoscope evaluate --pipeline: give --data (a folder or .zip of photos in class folders)")
    try:
        def scored(model: str | None, out: str | None) -> dict:
            return evaluate_pipeline(model, args.data, args.split, args.split_file, out, args.threads,
                                     args.detector_model, args.tta, mesh=args.mesh, mesh_model=args.mesh_model)
        r = scored(args.model, args.out)
        if args.against:
            r["against"] = compared(r, scored(args.against, None), args.against)
    except (ModelMetadataError, ModelNotFoundError):
        raise  # a --model that is missing or not self-describing: the command line is wrong (exit 2)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"emoscope evaluate: {exc}")
    keys = ("n", "faces_found", "no_face", "accuracy", "balanced_accuracy", "macro_f1", "neutral_read_negative",
            "mean_recall_support_30",
            "valence_agreement", "valence_agreement_balanced", "photos_per_second", "excluded_classes", "intervals",
            "intervals_resampled")
    out = {k: r[k] for k in keys if k in r}
    out["recall"] = {c: round(v, 4) for c, v in r["per_class_recall"].items()}
    out.update({k: r[k] for k in ("against",) if k in r})
    if args.record:
        record(args, r["model"], out, pipeline=True)
    print(json.dumps(out, indent=1))
    return 0


def compared(r: dict, other: dict, model: str) -> dict:
    """`--against`: the other model's headline numbers and this one's lead over it, image by image."""
    import numpy as np
    from ..metrics import paired_differences
    if r["classes"] != other["classes"]:
        raise ValueError(f"{model} reads other classes than --model ({', '.join(other['classes'])} against "
                         f"{', '.join(r['classes'])}), so the two cannot be compared image by image")
    if not np.array_equal(r["_labels"], other["_labels"]):
        raise ValueError(f"{model} was scored on other images than --model (the two split the data differently); "
                         f"give --split-file so both read the same")
    headline = ("accuracy", "balanced_accuracy", "macro_f1")
    return {"model": model, **{m: round(other[m], 4) for m in headline},
            "difference": paired_differences(r["_labels"], r["_predicted"], other["_predicted"], len(r["classes"]),
                                             groups=r.get("_groups"))}


def record(args, model: str, out: dict, pipeline: bool) -> None:
    """`--record`: the numbers of this evaluation into the ONNX file's metadata."""
    from ..contract import is_onnx_path, record_metrics
    from ..data.dataset import source_name
    if not is_onnx_path(model):
        raise SystemExit("emoscope evaluate --record: only an ONNX file can record its metrics")
    labels = "_ferplus" if getattr(args, "labels", "own") == "ferplus" and not pipeline else ""
    key = f"{source_name(args.data)}{labels}_{args.split}" + ("_pipeline" if pipeline else "") + \
        ("_mesh" if pipeline and args.mesh else "") + ("_flip" if args.tta == "flip" else "")
    numbers = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items() if k != "against"}
    record_metrics(model, key, {**numbers, "date": time.strftime("%Y-%m-%d")})


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders or globs (e.g. 'runs/*')")
    p.add_argument("--out", default="compare", help="folder for compare.{md,html,csv} and plots (default compare)")
    p.add_argument("--split", default="test", help="split scored with each run's best checkpoint (default test)")
    p.add_argument("--no-score", action="store_true", help="table from the run files only (no data, no latency)")


def run_compare(args) -> int:
    from .compare import compare, find_runs, markdown
    try:
        df = compare(find_runs(args.runs), args.out, args.split, not args.no_score)
    except ValueError as exc:
        raise SystemExit(f"emoscope compare: {exc}")
    print(markdown(df), end="")
    return 0
