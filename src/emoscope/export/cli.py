"""`emoscope models` and `emoscope export` (arguments torch-free; torch imported when run)."""

from __future__ import annotations

import argparse
import json

from ..contract import IMG_SIZE, CropRule


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=IMG_SIZE, help=f"input side for the MAC count (default {IMG_SIZE})")
    p.add_argument("--in-chans", type=int, default=1)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run folder (uses best.pt) or a checkpoint file; leave it out to join "
                   "--join's files alone, calibrated on --config's validation data")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--temperature", type=float, help="fixed temperature (default: fitted on the validation split)")
    p.add_argument("--no-class-bias", action="store_true",
                   help="do not fit per-class logit offsets on the primary source's validation part (balanced accuracy)")
    p.add_argument("--offsets-for", default="balanced", choices=["balanced", "macro_f1"],
                   help="what the per-class offsets maximise on the primary source's validation part (default: "
                        "balanced accuracy)")
    p.add_argument("--offsets-cap", type=float, help="largest offset either way, in logits (default: 2)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    p.add_argument("--join", nargs="+", metavar="FILE.onnx",
                   help="emoscope ONNX files (float, not int8) whose networks join the run's in one ensemble, each "
                        "network weighing the same, as `emoscope ensemble` would join their runs; for files whose "
                        "run folders are not at hand. Calibrated afresh on the run's validation data. FILE.onnx:0,2 "
                        "keeps only that file's networks 0 and 2 (in the order of its architecture)")
    p.add_argument("--config", help="with --join and no run: the training recipe (JSON/TOML) whose validation data "
                   "calibrates the joined files")
    p.add_argument("--int8", help="also write a static int8 (QDQ) copy to this path")
    p.add_argument("--fp16-weights", action="store_true",
                   help="store the file's weights as fp16, cast back to fp32 when it is loaded: half the size, "
                        "the same arithmetic (the int8 copy is made from the fp32 weights first)")
    p.add_argument("--margin", type=float, help="override the run's face-box margin per side (crop rule; the run's "
                   f"config records it, default {CropRule.margin})")
    p.add_argument("--square", action=argparse.BooleanOptionalAction, default=None,
                   help="override whether the box is made square (--no-square: stretched to the input, for models "
                        "trained on tight, non-square face crops)")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=None,
                   help="override whether face crops are histogram-equalised")


def run_models(args) -> int:
    from ..models import count_flops, count_params, create_model, list_models
    print(f"{'model':<16}{'params':>12}{'MACs':>14}")
    for name in list_models():
        m = create_model(name, 7, args.in_chans)
        print(f"{name:<16}{count_params(m):>12,}{count_flops(m, args.in_chans, args.size):>14,}")
    return 0


def run_export(args) -> int:
    from .onnx import export_onnx
    crop = {k: v for k, v in (("margin", args.margin), ("square", args.square), ("equalize", args.equalize))
            if v is not None}
    if args.run and args.config:
        raise SystemExit("emoscope export: --config is for joining files with no run; a run brings its own recipe")
    try:
        report = export_onnx(args.run, args.out, temperature=args.temperature, opset=args.opset, crop=crop,
                             use_ema=not args.no_ema, int8=args.int8, class_bias=not args.no_class_bias,
                             bias_objective=args.offsets_for, bias_cap=args.offsets_cap, join=args.join,
                             fp16_weights=args.fp16_weights, config=args.config)
    except ValueError as exc:
        raise SystemExit(f"emoscope export: {exc}")
    print(json.dumps(report, indent=1))
    return 0
