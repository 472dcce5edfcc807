"""The experiments behind docs/experiments.md, sized for a 2-core CPU. Each group trains a few
variants of one recipe, then `compare` writes its table and plots to experiments/results/GROUP/.
Runs resume, so an interrupted group continues where it stopped.

Usage: python experiments/run.py [GROUP ...] [--runs runs/experiments] [--threads 2]
Groups: ladder, regularisation, color, transfer (default: all).
"""

from __future__ import annotations

import argparse
import os
import sys

from emoscope.evaluate.compare import compare
from emoscope.train import TrainConfig
from emoscope.train.trainer import Trainer

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
FER = os.path.join(SHARED, "datasets", "fer2013.zip")
GENDER = os.path.join(SHARED, "datasets", "gender_faces.zip")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# FER2013 budget: a stratified 35% of train (~10,000 images), PublicTest picks the checkpoint,
# PrivateTest is reported. One-cycle AdamW at 1e-3 (plain CNNs stall under SGD at lr 0.05; AdamW
# trains every model here), label smoothing 0.1, no EMA, the trainer's augmentation.
FER_BASE = dict(data=FER, train_fraction=0.35, batch_size=128, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                schedule="onecycle", ema=0.0)
NO_AUGMENT = dict(rotate=0, scale=0, shift=0, flip=0, brightness=0, contrast=0, erase=0)

GROUPS: dict[str, dict[str, dict]] = {
    # Does a more complex model help at equal epochs?
    "ladder": {m: dict(FER_BASE, model=m, epochs=6) for m in
               ("cnn_small", "cnn_medium", "cnn_large", "baseline_cnn", "vgg_fer", "resnet_fer_s", "resnet_fer_m")},
    # Augmentation and dropout, alone and together; batch-norm removed; accuracy over 12 epochs.
    "regularisation": {
        "aug+dropout": dict(FER_BASE, model="cnn_medium", epochs=12),
        "aug only": dict(FER_BASE, model="cnn_medium", epochs=12, model_kwargs={"drop": 0.0, "dense_drop": 0.0}),
        "dropout only": dict(FER_BASE, model="cnn_medium", epochs=12, augment=NO_AUGMENT),
        "neither": dict(FER_BASE, model="cnn_medium", epochs=12, augment=NO_AUGMENT,
                        model_kwargs={"drop": 0.0, "dense_drop": 0.0}),
        "aug+dropout, no BN": dict(FER_BASE, model="cnn_medium", epochs=12, model_kwargs={"bn": False}),
    },
    # RGB vs grayscale input, on the colour photos of the gender set (FER2013 is grayscale only).
    "color": {c: dict(data=GENDER, model="resnet_fer_s", color=c, img_size=48, epochs=15, batch_size=64,
                      optimizer="adamw", lr=1e-3, weight_decay=0.05, ema=0.0, val_split=0.1, test_split=0.15)
              for c in ("gray", "rgb")},
    # A transfer backbone (random init here: no internet for ImageNet weights), frozen vs fine-tuned.
    "transfer": {
        "mobilenet_v2 frozen": dict(FER_BASE, model="mobilenet_v2", epochs=5, freeze_epochs=-1, bf16=False),
        "mobilenet_v2 fine-tuned": dict(FER_BASE, model="mobilenet_v2", epochs=5, bf16=False),
    },
}


def run_group(name: str, runs: str, threads: int) -> None:
    folders = []
    for variant, spec in GROUPS[name].items():
        out = os.path.join(runs, name, variant.replace(" ", "_").replace(",", "").replace("+", "_"))
        cfg = TrainConfig.from_dict({**spec, "out": out, "threads": threads})
        print(f"== {name}: {variant} -> {out}", file=sys.stderr)
        Trainer(cfg).fit(resume=True)
        folders.append(out)
    df = compare(folders, os.path.join(RESULTS, name))
    print(df.to_string(index=False))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)} (default: all)")
    p.add_argument("--runs", default="runs/experiments", help="where the run folders go")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        p.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    for name in args.groups or list(GROUPS):
        run_group(name, args.runs, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
