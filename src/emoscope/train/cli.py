"""`emoscope train`: a flag for each `TrainConfig` field (made from its help and choices, so each
default is stated once); flags override a config file; the resolved config is saved with the run."""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, fields

from .config import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON or TOML config file (flags given here override it)")
    for f in fields(TrainConfig):
        if not f.metadata["cli"]:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else f.default_factory()
        help_ = f.metadata["help"] + (f" (default {default})" if default not in ("", [], None) else "")
        if f.name == "teacher":
            p.add_argument(flag, dest=f.name, action="append", help=help_)
        elif isinstance(default, list):
            p.add_argument(flag, dest=f.name, type=lambda v: v.split(","), help=help_)
        elif isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            p.add_argument(flag, dest=f.name, type=type(default), choices=f.metadata["choices"], help=help_)
    p.add_argument("--pretrained", action="store_true", help="ImageNet weights for transfer backbones (internet)")
    p.add_argument("--primary-only", action="store_true",
                   help="train on the primary source alone, the config's other sources left out: the recipe's "
                        "leave-one-source-out twin (`experiments/leave_one_source_out.sh` scores it on the source "
                        "it never saw)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


def resolve(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.resume and not args.config and args.out and os.path.exists(os.path.join(args.out, "config.json")):
        cfg = TrainConfig.load(os.path.join(args.out, "config.json"))
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    if args.primary_only:
        cfg.sources = []
    if args.pretrained:
        cfg.model_kwargs = {**cfg.model_kwargs, "pretrained": True}
    if not cfg.data:
        raise SystemExit("emoscope train: give --data or a --config with 'data'")
    return cfg


def run(args: argparse.Namespace) -> int:
    from .distributed import maybe_init_distributed
    from .trainer import Trainer

    maybe_init_distributed()
    try:  # the recipe, its data, its warm start and teachers are checked here, in plain words
        trainer = Trainer(resolve(args))
    except ValueError as exc:
        raise SystemExit(f"emoscope train: {exc}")
    trainer.fit(resume=args.resume)
    return 0


def add_combine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (their best.pt) or checkpoint files")
    p.add_argument("--out", required=True, help="run folder for the combined best.pt")


def _combine(verb: str, runs_into, args: argparse.Namespace) -> int:
    try:
        path = runs_into(args.runs, args.out)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"emoscope {verb}: {exc}")
    print(f"{verb}d {len(args.runs)} runs into {path}")
    return 0


def run_average(args: argparse.Namespace) -> int:
    from .combine import average_runs
    return _combine("average", average_runs, args)


def run_ensemble(args: argparse.Namespace) -> int:
    from .combine import ensemble_runs
    return _combine("ensemble", ensemble_runs, args)
