"""`emoscope <verb>`: a thin command line over the library. Each verb imports its stage only when
run, so the inference verbs work without torch installed."""

from __future__ import annotations

import argparse
import importlib
import sys


def _lazy(module: str, func: str):
    """Defer importing a verb's implementation until it runs."""
    return lambda args: getattr(importlib.import_module(f"emoscope.{module}"), func)(args)


def build_parser() -> argparse.ArgumentParser:
    from .analyze.cli import add_analyze_arguments, add_webcam_arguments
    from .data.cli import add_audit_arguments, add_inspect_arguments
    from .train.cli import add_arguments as add_train_arguments

    parser = argparse.ArgumentParser(prog="emoscope", description="Facial expression recognition: train, measure, deploy.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    data = sub.add_parser("data", help="inspect or audit a dataset", description="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    p = data_sub.add_parser("inspect", help="counts, sizes, modes, charts and sample grids",
                            description="Per split/class counts, imbalance, sizes and modes; HTML report with charts.")
    add_inspect_arguments(p)
    p.set_defaults(func=_lazy("data.cli", "run_inspect"))
    p = data_sub.add_parser("audit", help="find corrupt, duplicate, leaked, blank and non-face images",
                            description="Data-quality audit; writes findings.csv and an exclusion list for training.")
    add_audit_arguments(p)
    p.set_defaults(func=_lazy("data.cli", "run_audit"))

    p = sub.add_parser("train", help="train a model (needs the 'train' extra)",
                       description="Train a registered model; checkpoints every epoch, resumable with --resume.")
    add_train_arguments(p)
    p.set_defaults(func=_lazy("train.cli", "run"))

    p = sub.add_parser("tune", help="hyper-parameter search with Optuna (resumable)",
                       description="Optuna TPE search with pruning; writes best_config.json for `train --config`.")
    from .train.tune import add_arguments as add_tune_arguments
    add_tune_arguments(p)
    p.set_defaults(func=_lazy("train.tune", "run"))

    p = sub.add_parser("models", help="list registered architectures with parameters and MACs",
                       description="List the model registry.")
    p.add_argument("--size", type=int, default=48, help="input side for the MAC count")
    p.add_argument("--in-chans", type=int, default=1)
    p.set_defaults(func=_lazy("export.cli", "run_models"))

    p = sub.add_parser("evaluate", help="metrics, calibration and an HTML report for a run or an ONNX file",
                       description="Score a model on a dataset split: accuracy, F1, ROC, calibration, report.")
    from .evaluate.cli import add_arguments as add_evaluate_arguments
    add_evaluate_arguments(p)
    p.set_defaults(func=_lazy("evaluate.cli", "run"))

    p = sub.add_parser("export", help="export a run to ONNX with metadata",
                       description="Export a training run (best checkpoint, EMA weights) to ONNX.")
    p.add_argument("run", help="run folder (uses best.pt) or a checkpoint file")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--temperature", type=float, help="fixed temperature (default: fitted on the validation split)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    p.add_argument("--margin", type=float, default=0.1, help="face-box margin per side recorded in the crop metadata")
    p.add_argument("--equalize", action="store_true", help="record that face crops are histogram-equalised "
                   "(for models trained on FER2013)")
    p.set_defaults(func=_lazy("export.cli", "run_export"))

    p = sub.add_parser("analyze", help="analyse images, folders, videos or globs",
                       description="Find faces, classify expressions, write results, annotations and reports.")
    add_analyze_arguments(p)
    p.set_defaults(func=_lazy("analyze.cli", "run_analyze"))

    p = sub.add_parser("webcam", help="live analysis of a camera, file or stream",
                       description="Live window (or headless output) with boxes, labels and FPS.")
    add_webcam_arguments(p)
    p.set_defaults(func=_lazy("analyze.cli", "run_webcam"))
    p = sub.add_parser("serve", help="REST + WebSocket API and web page (needs the 'serve' extra)",
                       description="Serve the analyzer over HTTP: /v1/analyze, /v1/videos, /v1/stream, web page at /.")
    from .serve.cli import add_arguments as add_serve_arguments
    add_serve_arguments(p)
    p.set_defaults(func=_lazy("serve.cli", "run"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
