"""Typed training configuration; every run writes its resolved copy as config.json."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from ..contract import IMG_SIZE, CropRule


SOURCE_KEYS = {"data", "weight", "split_file", "faces", "distill", "class_weights"}


@dataclass
class AugmentConfig:
    rotate: float = 15.0      # degrees, uniform +-
    scale: float = 0.15       # zoom factor in [1 - scale, 1 + scale]
    shift: float = 0.10       # fraction of the image side, uniform +-
    flip: float = 0.5         # probability of a horizontal flip
    brightness: float = 0.2   # additive, uniform +-
    contrast: float = 0.2     # multiplicative around the image mean, in [1 - c, 1 + c]
    erase: float = 0.25       # probability of erasing one random rectangle
    erase_area: tuple[float, float] = (0.02, 0.15)
    mixup: float = 0.0        # mixup alpha (0: off)
    cutmix: float = 0.0       # cutmix alpha (0: off); if both are on, each batch picks one
    eye_band: float = 0.0     # probability of a dark band across the eyes (sunglasses), before the affine
    # What real footage does to faces (emoscope.train.augment.degrade; 0 turns each off):
    yaw: float = 0.0          # head turned left/right by up to this many degrees (a cylinder-model warp)
    pitch: float = 0.0        # head tilted up/down by up to this many degrees
    light: float = 0.0        # probability of dim, uneven light (a gradient across the face, then a gamma)
    blur: float = 0.0         # probability of a Gaussian blur (sigma up to 4% of the side)
    lowres: float = 0.0       # probability of a small face: down to 12-50% of the side, then back up
    noise: float = 0.0        # probability of sensor noise (sd up to 0.06)
    mesh_turn: float = 0.0    # probability of a head turn made from the face's own mesh (emoscope.data.turn;
    mesh_yaw: float = 40.0    # ... by up to this many degrees either way): meshes measured once per dataset

    def scaled(self, strength: float) -> "AugmentConfig":
        """The same recipe with every geometric/photometric range multiplied by `strength`."""
        return replace(self, rotate=self.rotate * strength, scale=self.scale * strength,
                       shift=self.shift * strength, brightness=self.brightness * strength,
                       contrast=self.contrast * strength, erase=min(1.0, self.erase * strength))


def opt(default=MISSING, help: str = "", choices: tuple | None = None, cli: bool = True, factory=MISSING):
    """A TrainConfig field with the help (and choices) of its `emoscope train` flag; `cli=False`
    keeps a structured field to config files."""
    return field(default=default, default_factory=factory, metadata={"help": help, "choices": choices, "cli": cli})


@dataclass
class TrainConfig:
    """Every setting of a training run, stated once: `emoscope train` makes a flag of each field
    (train/cli.py) and every run saves its resolved copy as config.json."""

    data: str = opt("", "dataset folder, .zip or .csv (the primary source)")
    votes: str = opt("", "FER+ votes file for a FER2013 primary: majority-rule labels, vote distributions as "
                     "training targets (emoscope.data.ferplus)")
    own_label_votes: float = opt(0.0, "with --votes: FER2013's own label joins the FER+ vote distribution of the "
                                 "training targets as this many votes (0: FER+ votes only)")
    neutral_vote_weight: float = opt(1.0, "with --votes: each FER+ neutral vote counts as this much of a vote in the "
                                     "training targets (below 1: a lower neutral share; labels keep the majority rule)")
    out: str = opt("runs/default", "run folder")
    model: str = opt("resnet_fer_s", "registered model name (see `emoscope models`)")
    model_kwargs: dict = opt(help="keyword arguments of the model", cli=False, factory=dict)
    img_size: int = opt(IMG_SIZE, "input side in pixels")
    color: str = opt("gray", "input colour", ("gray", "rgb"))
    epochs: int = opt(30, "epochs")
    batch_size: int = opt(128, "batch size")
    optimizer: str = opt("sgd", "optimizer (sgd: Nesterov momentum)", ("sgd", "adamw"))
    lr: float = opt(0.1, "peak learning rate")
    momentum: float = opt(0.9, "SGD momentum")
    weight_decay: float = opt(5e-4, "weight decay (not on BN or biases)")
    schedule: str = opt("onecycle", "learning-rate schedule", ("onecycle", "cosine", "plateau"))
    warmup_epochs: float = opt(1.0, "warm-up epochs (cosine only)")
    plateau_patience: int = opt(3, "epochs without improvement before halving the lr (plateau only)")
    label_smoothing: float = opt(0.1, "label smoothing")
    balance: str = opt("none", "class balance: a class-weighted loss or a balanced sampler",
                       ("none", "weights", "sampler"))
    ema: float = opt(0.999, "EMA decay of the weights (0 disables)")
    freeze_epochs: int = opt(0, "train only the model's head for N epochs, then everything (-1: keep frozen)")
    augment: AugmentConfig = opt(help="batched augmentation", cli=False, factory=AugmentConfig)
    init: str = opt("", "warm start from this run folder (its best.pt, EMA) or .pt of the same model and classes (a gray run may start a colour one)")
    teacher: list[str] = opt(help="distil this run folder's or exported .onnx file's predictions; repeat for an "
                             "ensemble", factory=list)
    distill: float = opt(0.7, "weight of the teachers' probabilities in the training target (0..1)")
    distill_temperature: float = opt(1.0, "temperature that softens the teachers' logits")
    distill_online: bool = opt(False, "the teachers predict every augmented batch (costs their forward passes) "
                               "instead of the clean images once")
    distill_flip: bool = opt(False, "online: average each teacher's logits with its view of the mirrored batch")
    train_splits: list[str] = opt(help="comma list of splits folded into train before val is carved (e.g. "
                                  "train,val)", factory=lambda: ["train"])
    train_fraction: float = opt(1.0, "train on this stratified, seeded share of the training split (experiments)")
    val_split: float = opt(0.1, "validation fraction carved from train (stratified) when the data has none")
    test_split: float = opt(0.0, "held-out test fraction carved from train first (never trained on)")
    exclude: str = opt("", "file of sample ids to leave out (from `emoscope data audit`)")
    # More training sources beside `data`, each a dict: data (path), weight (share of each epoch's
    # draws; `data` gets the rest), split_file (`emoscope data split`), faces (cut each photo to its
    # largest detected face by `crop`, as the runtime does), distill (teachers blend into its
    # targets), class_weights ({class: sampling factor}).
    sources: list[dict] = opt(help="more training sources", cli=False, factory=list)
    crop: dict = opt(help="face crop rule, recorded in exports", cli=False, factory=lambda: asdict(CropRule()))
    monitor: str = opt("val_acc", "what picks best.pt: accuracy or macro-F1 of the primary's val split, the "
                       "mean accuracy over every source's val split, or the mean balanced accuracy over them",
                       ("val_acc", "val_f1", "val_mean", "val_bal"))
    early_stop: int = opt(0, "patience in epochs (0: off)")
    seed: int = opt(0, "seed")
    threads: int = opt(0, "torch threads (0: all cores)")
    bf16: bool = opt(True, "bf16 autocast on the CPU (fp16 AMP on CUDA)")
    channels_last: bool = opt(True, "channels_last memory format (the CPU trains a model with a strided 1x1 "
                                          "convolution over fewer than 16 channels contiguous instead)")
    device: str = opt("auto", "device", ("auto", "cpu", "cuda"))

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        for s in d.get("sources", []):
            bad = set(s) - SOURCE_KEYS
            if bad or "data" not in s or "weight" not in s:
                raise ValueError(f"a source needs 'data' and 'weight' and may have {', '.join(sorted(SOURCE_KEYS))}; "
                                 f"got {', '.join(sorted(s))}")
        if "crop" in d:
            d["crop"] = asdict(CropRule.from_dict(d["crop"]))
        if isinstance(d.get("augment"), dict):
            aug_known = {f.name for f in fields(AugmentConfig)}
            bad = set(d["augment"]) - aug_known
            if bad:
                raise ValueError(f"unknown augment keys: {', '.join(sorted(bad))}")
            a = dict(d["augment"])
            if "erase_area" in a:
                a["erase_area"] = tuple(a["erase_area"])
            d["augment"] = AugmentConfig(**a)
        return cls(**d)

    @classmethod
    def load(cls, path: str) -> "TrainConfig":
        """Read a JSON or TOML config file."""
        with open(path, "rb") as f:
            d = tomllib.load(f) if path.endswith(".toml") else json.load(f)
        return cls.from_dict(d)
