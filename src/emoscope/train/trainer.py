"""The trainer: whole dataset in memory as uint8, batched tensor augmentation, bf16 autocast and
channels_last on CPU, EMA weights, atomic per-epoch checkpoints and exact resume, optional DDP."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import metrics
from ..contract import CropRule
from ..data import Dataset
from ..data.dataset import HOLDOUT_KEYS, Source, run_sources, source_name, training_view
from ..models import channels_last_hazard, count_flops, count_params, create_model
from ..models.checkpoint import (checkpoint_state, flip_averaged_logits, gray_to_rgb, normalize, predict_logits,
                                run_checkpoint, to_input)
from .augment import augment, mesh_turn, mix
from .config import TrainConfig
from .teachers import ResizedInput, load_teacher

def holdout_splits(ds: Dataset, cfg: TrainConfig) -> Dataset:
    """The run's splits (see `training_view`)."""
    return training_view(ds, **{k: getattr(cfg, k) for k in HOLDOUT_KEYS})


def atomic_save(obj, path: str) -> None:
    """Write then rename, so a kill mid-write never leaves a broken checkpoint."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


class EMA:
    """Exponential moving average of a model's weights (buffers copied as they are)."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_p = [p for p in self.module.parameters()]
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    """Train one model on one dataset per a TrainConfig; `fit()` resumes from `out/last.pt`."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True):
        self.cfg = cfg
        self.rank, self.world = _dist_info()
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        if dataset is not None:
            self.sources = [Source(source_name(cfg.data or "data"), holdout_splits(dataset, cfg), 1.0, True)]
        else:
            self.sources = run_sources(asdict(cfg), verbose=self.is_main)
        self.classes = self.sources[0].data.classes
        trains = [s.data.split("train") for s in self.sources]
        self.val_sets = [s.data.split("val") for s in self.sources]
        self.train_set, self.val_set = Dataset.concat(trains), self.val_sets[0]
        self.train_source = np.concatenate([np.full(len(t), i) for i, t in enumerate(trains)])
        if any(len(t) == 0 for t in trains) or any(len(v) == 0 for v in self.val_sets):
            raise ValueError(f"need train and val samples in every source, have "
                             f"{[(len(t), len(v)) for t, v in zip(trains, self.val_sets)]}")
        self.in_chans = 1 if cfg.color == "gray" else 3
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model, len(self.classes), self.in_chans, **cfg.model_kwargs).to(self.device)
        if cfg.init:
            self._load_init(cfg.init)
        if cfg.freeze_epochs and not hasattr(self.model, "head"):
            raise ValueError(f"{cfg.model} has no separate head to train while the rest is frozen")
        self.params = count_params(self.model)
        self.flops = count_flops(self.model, self.in_chans, cfg.img_size)
        hazard = channels_last_hazard(self.model) if cfg.channels_last and self.device == "cpu" else None
        self.channels_last = cfg.channels_last and hazard is None
        if hazard and self.is_main:
            print(f"training in the contiguous layout, not channels_last: {hazard}", file=sys.stderr)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        self.net = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.epoch_size = int(round(len(trains[0]) / self.sources[0].weight))
        self.steps_per_epoch = max(1, self.epoch_size // (cfg.batch_size * self.world))
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        counts = np.bincount(self.train_set.labels, minlength=len(self.classes)).astype(np.float64)
        self.class_counts = counts
        w = np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0)
        self.loss_weight = torch.tensor(w, dtype=torch.float32, device=self.device) if cfg.balance == "weights" else None
        self.history: list[dict] = []
        self.best = -math.inf
        self.bad_epochs = 0
        self.start_epoch = 0
        self.train_seconds = 0.0
        self.train_u8 = torch.from_numpy(self.train_set.images)
        self.train_meshes = None  # (meshes, presence) for the head turn made from each face's mesh
        if cfg.augment.mesh_turn:
            from ..data.turn import cached_face_meshes
            self.train_meshes = cached_face_meshes(self.train_set.images, CropRule.from_dict(cfg.crop).margin,
                                                   progress=self.progress)
        self.train_y = torch.from_numpy(self.train_set.labels)
        self.train_targets = torch.from_numpy(self.train_set.targets())
        self.distilled = torch.from_numpy(np.array([s.distill for s in self.sources])[self.train_source])
        self.teachers = self._load_teachers()
        self.teacher_probs = self._teacher_probs() if self.teachers and not cfg.distill_online else None
        if self.teacher_probs is not None:
            self.teachers = []  # offline: their predictions are all that is needed

    # -- construction ---------------------------------------------------------------------------
    def _load_init(self, source: str) -> None:
        """Warm start from another run of the same model and classes (its EMA weights if any). A
        gray run starts a colour one as the same function of the image's luma (`gray_to_rgb`)."""
        path = run_checkpoint(source)
        ck = torch.load(path, map_location=self.device, weights_only=False)
        if ck["config"]["model"] != self.cfg.model or ck["classes"] != self.classes:
            raise ValueError(f"init {path}: a {ck['config']['model']} over {ck['classes']}, "
                             f"not a {self.cfg.model} over {self.classes}")
        if ck.get("ensemble"):
            raise ValueError(f"init {path}: an ensemble of several networks cannot start one; start from one of its runs")
        state = checkpoint_state(ck)
        colour = ck["config"].get("color", "gray")
        if colour != self.cfg.color:
            if colour != "gray":
                raise ValueError(f"init {path}: a {colour} model cannot start a {self.cfg.color} one")
            state = gray_to_rgb(state, self.model.state_dict())
        self.model.load_state_dict(state)

    def _load_teachers(self) -> list[nn.Module]:
        """The distillation teachers (run folders or exported .onnx files) in eval mode, refused
        unless they read the student's colour and classes; a teacher of another (square) input
        size reads the student's images resized to its own (`ResizedInput`)."""
        cfg, teachers = self.cfg, []
        for run in cfg.teacher:
            teacher, tcfg, tclasses = load_teacher(run, cfg.threads)
            if tclasses != self.classes or tcfg["color"] != cfg.color or not isinstance(tcfg["img_size"], int):
                raise ValueError(f"teacher {run}: {tcfg['color']} {tcfg['img_size']}px over {tclasses}, "
                                 f"not {cfg.color} over {self.classes}")
            if tcfg["img_size"] != cfg.img_size:
                teacher = ResizedInput(teacher, tcfg["img_size"])
            if self.channels_last:
                teacher = teacher.to(memory_format=torch.channels_last)
            teachers.append(teacher.to(self.device).requires_grad_(False))
        return teachers

    def _teacher_probs(self) -> torch.Tensor:
        """Offline distillation: the teachers' averaged class probabilities for every training image,
        computed once (flip-averaged logits on the clean image, softened by `distill_temperature`),
        so a step costs no teacher forward pass."""
        cfg = self.cfg
        probs = []
        for run, teacher in zip(cfg.teacher, self.teachers):
            logits = predict_logits(teacher, self.train_set.images, channels_last=self.channels_last,
                                    bf16=cfg.bf16, device=self.device, flip=True)
            probs.append(torch.softmax(torch.from_numpy(logits) / cfg.distill_temperature, dim=1))
            if self.is_main:
                acc = float((probs[-1].argmax(1).numpy() == self.train_set.labels).mean())
                print(f"teacher {run}: {acc:.4f} accuracy on the training images", flush=True)
        return torch.stack(probs).mean(0)

    @torch.no_grad()
    def online_teacher_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Online distillation: the teachers' averaged probabilities on the very batch the student
        sees (augmented and mixed), so the student matches their function, not stale labels. With
        `distill_flip` each teacher's logits are averaged with its view of the mirrored batch, the
        flip TTA that makes a teacher about half a point better."""
        probs = []
        with self._autocast():
            for t in self.teachers:
                logits = flip_averaged_logits(t, x) if self.cfg.distill_flip else t(x).float()
                probs.append(torch.softmax(logits / self.cfg.distill_temperature, dim=1))
        return torch.stack(probs).mean(0)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN and biases
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr)
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (sgd, adamw)")

    def _make_scheduler(self):
        cfg, total = self.cfg, self.cfg.epochs * self.steps_per_epoch
        if cfg.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=cfg.lr, total_steps=total,
                                                       pct_start=0.15, div_factor=20, final_div_factor=200)
        if cfg.schedule == "cosine":
            warm = max(1, int(cfg.warmup_epochs * self.steps_per_epoch))

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        if cfg.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", factor=0.5,
                                                              patience=cfg.plateau_patience)
        raise ValueError(f"unknown schedule {cfg.schedule!r} (onecycle, cosine, plateau)")

    # -- checkpoints ----------------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        return {
            "epoch": epoch, "model": self.model.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema else None,
            "ema_updates": self.ema.updates if self.ema else 0,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "history": self.history, "best": self.best, "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds, "config": asdict(self.cfg), "classes": self.classes,
        }

    def resume(self) -> bool:
        """Load `out/last.pt` if present; returns whether training continues from it."""
        path = os.path.join(self.cfg.out, "last.pt")
        if not os.path.exists(path):
            return False
        ck = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(ck["model"])
        if self.ema and ck["ema"] is not None:
            self.ema.module.load_state_dict(ck["ema"])
            self.ema.updates = ck["ema_updates"]
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        self.history, self.best, self.bad_epochs = ck["history"], ck["best"], ck["bad_epochs"]
        self.train_seconds = ck["train_seconds"]
        self.start_epoch = ck["epoch"] + 1
        return True

    def _write_history(self) -> None:
        with open(os.path.join(self.cfg.out, "history.json.tmp"), "w") as f:
            json.dump(self.history, f, indent=1)
        os.replace(os.path.join(self.cfg.out, "history.json.tmp"), os.path.join(self.cfg.out, "history.json"))
        tmp = os.path.join(self.cfg.out, "history.csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.history[0]))
            w.writeheader()
            w.writerows(self.history)
        os.replace(tmp, os.path.join(self.cfg.out, "history.csv"))

    # -- training -------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        """The training samples of one epoch, seeded by the epoch. The primary source is seen once
        (in random order, or class-balanced with replacement under `balance: sampler`); each extra
        source adds `weight` of the epoch's draws, with replacement, in proportion to its class
        weights; then everything is shuffled together."""
        rng = np.random.default_rng(self.cfg.seed * 100_003 + epoch)
        primary = np.flatnonzero(self.train_source == 0)
        n = len(primary)
        if self.cfg.balance == "sampler":
            p = 1.0 / self.class_counts[self.train_set.labels[primary]]
            order = primary[rng.choice(n, size=n, replace=True, p=p / p.sum())]
        else:
            order = primary[rng.permutation(n)]
        if len(self.sources) > 1:
            parts = [order]
            for i, source in enumerate(self.sources[1:], start=1):
                members = np.flatnonzero(self.train_source == i)
                factor = np.array([source.class_weights.get(c, 1.0) for c in self.classes])
                p = factor[self.train_set.labels[members]]
                parts.append(rng.choice(members, size=int(round(source.weight * self.epoch_size)), p=p / p.sum()))
            order = rng.permutation(np.concatenate(parts))
        per_rank = self.steps_per_epoch * self.cfg.batch_size
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def _autocast(self):
        if not self.cfg.bf16:
            return nullcontext()
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def _set_frozen(self, epoch: int) -> None:
        """Frozen feature extraction, then staged fine-tuning: only `model.head` learns (and the
        backbone's BN statistics stay fixed) while epoch < freeze_epochs, or always if -1."""
        frozen = self.cfg.freeze_epochs == -1 or epoch < self.cfg.freeze_epochs
        head = {id(p) for p in self.model.head.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(not frozen or id(p) in head)
        if frozen:
            head_modules = set(self.model.head.modules())
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in head_modules:
                    m.eval()

    def train_epoch(self, epoch: int, scaler) -> tuple[float, float]:
        cfg = self.cfg
        self.net.train()
        if cfg.freeze_epochs:
            self._set_frozen(epoch)
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.from_numpy(self.epoch_order(epoch))
        batches = order.split(cfg.batch_size)
        bar = batches
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False,
                       dynamic_ncols=True, mininterval=2.0, file=sys.stderr)
        loss_sum, correct, seen = 0.0, 0, 0
        for idx in bar:
            faces = self.train_u8[idx]
            if self.train_meshes is not None:
                faces = mesh_turn(faces, *(m[idx.numpy()] for m in self.train_meshes), cfg.augment, g)
            x = augment(to_input(faces), cfg.augment, g)
            y = self.train_y[idx]
            target = self.train_targets[idx]
            distilled = self.distilled[idx, None]
            if self.teacher_probs is not None:
                blend = (1 - cfg.distill) * target + cfg.distill * self.teacher_probs[idx]
                target = torch.where(distilled, blend, target)
            x, target = mix(x, target, cfg.augment, g)
            x = normalize(x).to(self.device, non_blocking=True)
            target = target.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.teachers:
                blend = (1 - cfg.distill) * target + cfg.distill * self.online_teacher_probs(x)
                target = torch.where(distilled.to(self.device), blend, target)
            with self._autocast():
                logits = self.net(x)
            loss = F.cross_entropy(logits.float(), target, weight=self.loss_weight,
                                   label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(self.optimizer)
                scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            if cfg.schedule != "plateau":
                self.scheduler.step()
            if self.ema:
                self.ema.update(self.model)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1).cpu() == y).sum())
            seen += len(idx)
            if self.progress:
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    def _sync_buffers(self) -> None:
        """BN statistics drift apart per rank after the last forward; take rank 0's everywhere."""
        modules = [self.model] + ([self.ema.module] if self.ema else [])
        for m in modules:
            for b in m.buffers():
                dist.broadcast(b, 0)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        model = self.ema.module if self.ema else self.model
        logits = predict_logits(model, images, channels_last=self.channels_last, bf16=self.cfg.bf16,
                                device=self.device)
        loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item())
        s = metrics.summary(labels, logits.argmax(1), len(self.classes))
        bal = metrics.balanced_accuracy(labels, logits.argmax(1), len(self.classes), metrics.BALANCE_MIN_SUPPORT)
        return {"loss": loss, "acc": s["accuracy"], "f1": s["macro_f1"], "bal": bal}

    def fit(self, resume: bool = False, on_epoch_end=None) -> list[dict]:
        """Train to `cfg.epochs`. `on_epoch_end(row)` runs after each epoch's checkpoint (e.g. a
        tuner's pruning check; an exception there stops training with the checkpoint intact)."""
        cfg = self.cfg
        if self.is_main:
            os.makedirs(cfg.out, exist_ok=True)
        if resume and self.resume() and self.is_main:
            print(f"resumed {cfg.out} at epoch {self.start_epoch + 1}", file=sys.stderr)
        elif not resume and os.path.exists(os.path.join(cfg.out, "last.pt")):
            raise FileExistsError(f"{cfg.out} already holds a run; pass --resume to continue it or pick another --out")
        if self.is_main:
            cfg.save(os.path.join(cfg.out, "config.json"))
            print(f"{cfg.model}: {self.params / 1e6:.2f}M params, {self.flops / 1e6:.0f}M MACs; "
                  f"train {len(self.train_set)}, val {len(self.val_set)}, device {self.device}, "
                  f"world {self.world}", file=sys.stderr)
        scaler = torch.amp.GradScaler("cuda") if self.device.startswith("cuda") and cfg.bf16 else None
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.time()
            train_loss, train_acc = self.train_epoch(epoch, scaler)
            if self.world > 1:
                self._sync_buffers()
            seconds = time.time() - t0
            vals = [self.evaluate(v.images, v.labels) for v in self.val_sets]
            val = vals[0]
            self.train_seconds += seconds
            row = {"epoch": epoch + 1, "train_loss": round(train_loss, 5), "train_acc": round(train_acc, 5),
                   "val_loss": round(val["loss"], 5), "val_acc": round(val["acc"], 5), "val_f1": round(val["f1"], 5)}
            if len(vals) > 1:
                row.update({f"val_acc_{s.name}": round(v["acc"], 5) for s, v in zip(self.sources[1:], vals[1:])})
            row.update({f"val_bal_{s.name}": round(v["bal"], 5) for s, v in zip(self.sources, vals)})
            row.update({"val_mean": round(float(np.mean([v["acc"] for v in vals])), 5),
                        "val_bal": round(float(np.mean([v["bal"] for v in vals])), 5),
                        "lr": self.optimizer.param_groups[0]["lr"], "epoch_seconds": round(seconds, 2),
                        "images_per_second": round(self.steps_per_epoch * cfg.batch_size * self.world / seconds, 1)})
            self.history.append(row)
            score = row[cfg.monitor]
            if cfg.schedule == "plateau":
                self.scheduler.step(score)
            improved = score > self.best
            self.best = max(self.best, score)
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
            if self.is_main:
                state = self._state(epoch)
                if improved:
                    atomic_save({k: state[k] for k in ("epoch", "model", "ema", "config", "classes", "history")},
                                os.path.join(cfg.out, "best.pt"))
                atomic_save(state, os.path.join(cfg.out, "last.pt"))
                self._write_history()
                extra = "".join(f" val_acc_{s.name} {v['acc']:.4f}" for s, v in zip(self.sources[1:], vals[1:]))
                extra += f" val_bal {row['val_bal']:.4f}"
                print(f"epoch {epoch + 1}/{cfg.epochs} train_loss {train_loss:.4f} train_acc {train_acc:.4f} "
                      f"val_acc {val['acc']:.4f} val_f1 {val['f1']:.4f}{extra} lr {row['lr']:.4g} "
                      f"{seconds:.1f}s{' *' if improved else ''}", file=sys.stderr, flush=True)
            if on_epoch_end is not None:
                on_epoch_end(row)
            if cfg.early_stop and self.bad_epochs >= cfg.early_stop:
                if self.is_main:
                    print(f"early stop: {cfg.monitor} did not improve for {cfg.early_stop} epochs", file=sys.stderr)
                break
        if self.world > 1:
            # Every rank records what it ended with, so agreement across ranks can be checked.
            checksum = float(sum(p.double().sum() for p in self.model.parameters()))
            with open(os.path.join(cfg.out, f"rank{self.rank}.json"), "w") as f:
                json.dump({"rank": self.rank, "world": self.world, "last": self.history[-1] if self.history else None,
                           "param_checksum": checksum}, f)
        if self.is_main:
            summary = {"model": cfg.model, "params": self.params, "macs": self.flops, "epochs": len(self.history),
                       "best_" + cfg.monitor: self.best, "train_seconds": round(self.train_seconds, 1),
                       "classes": self.classes}
            with open(os.path.join(cfg.out, "summary.json"), "w") as f:
                json.dump(summary, f, indent=2)
        return self.history
