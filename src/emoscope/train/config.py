"""Typed training configuration; every run writes its resolved copy as config.json."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields

from ..contract import CropRule


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

    def scaled(self, strength: float) -> "AugmentConfig":
        """The same recipe with every geometric/photometric range multiplied by `strength`."""
        return AugmentConfig(self.rotate * strength, self.scale * strength, self.shift * strength,
                             self.flip, self.brightness * strength, self.contrast * strength,
                             min(1.0, self.erase * strength), self.erase_area, self.mixup, self.cutmix)


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/default"
    model: str = "resnet_fer_s"
    model_kwargs: dict = field(default_factory=dict)
    img_size: int = 48
    color: str = "gray"                  # gray | rgb
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"               # sgd (Nesterov) | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"           # onecycle | cosine | plateau
    warmup_epochs: float = 1.0           # cosine only
    plateau_patience: int = 3
    label_smoothing: float = 0.1
    balance: str = "none"                # none | weights (class-weighted loss) | sampler
    ema: float = 0.999                   # EMA decay of weights; 0 disables
    freeze_epochs: int = 0               # train only the model's head for this many epochs (-1: always)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init: str = ""                       # warm start: weights of a run folder (its best.pt, EMA) or a .pt file
    teacher: list[str] = field(default_factory=list)  # runs or exported .onnx files whose predictions are distilled
    distill: float = 0.7                 # weight of the teachers' probabilities in the training target
    distill_temperature: float = 1.0     # softens the teachers' logits before averaging their probabilities
    distill_online: bool = False         # teachers see each augmented batch (consistent views) instead of
                                         # their probabilities on the clean images computed once
    distill_flip: bool = False           # online: teachers also see the mirrored batch (flip TTA)
    train_splits: list[str] = field(default_factory=lambda: ["train"])  # splits folded into train first
    train_fraction: float = 1.0          # stratified, seeded share of train actually used (experiments)
    val_split: float = 0.1               # carved from train, stratified, only if the data has no val split
    test_split: float = 0.0              # likewise a held-out test split (carved first, never trained on)
    exclude: str = ""                    # file of sample ids to drop (the audit's exclusion list)
    # More training sources beside `data`, each a dict: data (path), weight (share of each epoch's
    # draws; `data` gets the rest), split_file (`emoscope data split`), faces (cut each photo to its
    # largest detected face by `crop`, as the runtime does), distill (teachers blend into its
    # targets), class_weights ({class: sampling factor}).
    sources: list[dict] = field(default_factory=list)
    crop: dict = field(default_factory=lambda: asdict(CropRule()))  # face crop rule, recorded in exports
    monitor: str = "val_acc"             # val_acc | val_f1 (of `data`'s val split) | val_mean (mean
                                         # accuracy over every source's val split): picks best.pt
    early_stop: int = 0                  # patience in epochs; 0 disables
    seed: int = 0
    threads: int = 0                     # 0: all cores
    bf16: bool = True                    # bf16 autocast on CPU (AMP fp16 on CUDA)
    channels_last: bool = True
    device: str = "auto"                 # auto | cpu | cuda

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
