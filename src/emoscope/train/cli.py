"""`emoscope train`: flags override a config file; the resolved config is saved with the run."""

from __future__ import annotations

import argparse
import os

from .config import TrainConfig

FLAGS = ("data", "out", "model", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
         "label_smoothing", "balance", "ema", "color", "img_size", "seed", "threads", "exclude", "monitor",
         "early_stop", "val_split", "test_split", "device", "freeze_epochs", "init", "train_fraction",
         "train_splits", "teacher", "distill", "distill_temperature", "distill_online",
         "distill_flip")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--config", help="JSON or TOML config file (flags given here override it)")
    p.add_argument("--data", help="dataset folder, .zip or .csv")
    p.add_argument("--out", help=f"run folder (default {d.out})")
    p.add_argument("--model", help=f"registered model name (default {d.model}; see `emoscope models`)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--schedule", choices=["onecycle", "cosine", "plateau"])
    p.add_argument("--weight-decay", dest="weight_decay", type=float)
    p.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    p.add_argument("--balance", choices=["none", "weights", "sampler"])
    p.add_argument("--ema", type=float, help="EMA decay (0 disables)")
    p.add_argument("--color", choices=["gray", "rgb"])
    p.add_argument("--img-size", dest="img_size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--exclude", help="file with sample ids to leave out (from `emoscope data audit`)")
    p.add_argument("--monitor", choices=["val_acc", "val_f1", "val_mean"])
    p.add_argument("--early-stop", dest="early_stop", type=int, help="patience in epochs (0: off)")
    p.add_argument("--init", help="warm start from this run folder (or .pt) of the same model and classes")
    p.add_argument("--teacher", action="append",
                   help="distil this run folder's (or exported .onnx file's) predictions; repeat for an ensemble")
    p.add_argument("--distill", type=float, help="weight of the teachers' probabilities in the target (0..1)")
    p.add_argument("--distill-temperature", dest="distill_temperature", type=float,
                   help="temperature that softens the teachers' logits")
    p.add_argument("--distill-online", dest="distill_online", action="store_true", default=None,
                   help="the teachers predict every augmented batch (costs their forward passes)")
    p.add_argument("--distill-flip", dest="distill_flip", action="store_true", default=None,
                   help="online: average each teacher's logits with its view of the mirrored batch")
    p.add_argument("--train-splits", dest="train_splits", type=lambda v: v.split(","),
                   help="comma list of splits folded into train before the val split is carved (e.g. train,val)")
    p.add_argument("--train-fraction", dest="train_fraction", type=float,
                   help="train on this stratified share of the training split (experiments)")
    p.add_argument("--val-split", dest="val_split", type=float, help="validation fraction carved from train")
    p.add_argument("--test-split", dest="test_split", type=float, help="held-out test fraction carved from train")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--freeze-epochs", dest="freeze_epochs", type=int,
                   help="train only the head for N epochs, then fine-tune everything (-1: keep frozen)")
    p.add_argument("--pretrained", action="store_true", help="ImageNet weights for transfer backbones (internet)")
    p.add_argument("--no-bf16", action="store_true", help="train in fp32")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")


def resolve(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.resume and not args.config and args.out and os.path.exists(os.path.join(args.out, "config.json")):
        cfg = TrainConfig.load(os.path.join(args.out, "config.json"))
    for name in FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(cfg, name, value)
    if args.pretrained:
        cfg.model_kwargs = {**cfg.model_kwargs, "pretrained": True}
    if args.no_bf16:
        cfg.bf16 = False
    if args.no_channels_last:
        cfg.channels_last = False
    if not cfg.data:
        raise SystemExit("emoscope train: give --data or a --config with 'data'")
    return cfg


def run(args: argparse.Namespace) -> int:
    from .trainer import Trainer
    from .distributed import maybe_init_distributed

    maybe_init_distributed()
    cfg = resolve(args)
    Trainer(cfg).fit(resume=args.resume)
    return 0
