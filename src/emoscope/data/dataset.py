"""Load a dataset into memory as uint8 arrays, with a cache keyed by source and preprocessing."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..contract import IMG_SIZE, CropRule, crop_face
from ..images import ImageDecodeError, open_image, pil_to_array
from ..labels import CONTEMPT, EXPRESSIONS, canonical_label
from ..runtime.assets import cache_dir
from .readers import DatasetError, FileTree, RawSample, Skipped, iter_samples

CACHE_VERSION = 4  # 4: any image with no face found is tried again at the retry side (runtime.detector)
SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """A whole dataset in memory. `images` is uint8 (N, H, W) for gray or (N, H, W, 3) RGB."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    ids: np.ndarray
    classes: list[str]
    layout: str
    source: str
    orig_sizes: np.ndarray  # (N, 2) width, height before resizing
    orig_modes: np.ndarray  # PIL mode of each source file (L, RGB, RGBA, I;16, ...)
    skipped: list[Skipped] = field(default_factory=list)
    soft: np.ndarray | None = None  # (N, C) float32 target distributions (FER+ votes), when known

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, mask: np.ndarray) -> "Dataset":
        return Dataset(self.images[mask], self.labels[mask], self.splits[mask], self.ids[mask],
                       self.classes, self.layout, self.source, self.orig_sizes[mask],
                       self.orig_modes[mask], self.skipped, None if self.soft is None else self.soft[mask])

    def targets(self) -> np.ndarray:
        """(N, C) float32 training targets: the soft targets when known, else one-hot labels."""
        if self.soft is not None:
            return self.soft
        return np.eye(len(self.classes), dtype=np.float32)[self.labels]

    @classmethod
    def concat(cls, parts: list["Dataset"]) -> "Dataset":
        """One dataset of several with the same classes, image size and colour."""
        first = parts[0]
        soft = np.concatenate([p.targets() for p in parts]) if any(p.soft is not None for p in parts) else None
        return cls(*(np.concatenate([getattr(p, k) for p in parts])
                     for k in ("images", "labels", "splits", "ids")), first.classes, first.layout, first.source,
                   np.concatenate([p.orig_sizes for p in parts]), np.concatenate([p.orig_modes for p in parts]),
                   [s for p in parts for s in p.skipped], soft)

    def with_votes(self, path: str, own_label_votes: float = 0.0, neutral_vote_weight: float = 1.0) -> "Dataset":
        """FER2013 relabelled by the FER+ votes in `path` (`emoscope.data.ferplus`): every split is
        labelled by FER+'s majority rule, and the training split also carries the vote
        distributions as soft targets. Images without votes or not faces by the votes are left
        out, and so are val and test images without a majority (they have no label to score).
        `own_label_votes`: FER2013's own label joins the soft targets as that many votes;
        `neutral_vote_weight`: what a neutral vote counts for in them (`ferplus.soft_targets`)."""
        from .ferplus import majority_labels, soft_targets, votes_for
        votes = votes_for(self.ids, path)
        has = votes[:, 0] >= 0
        majority = majority_labels(np.maximum(votes, 0), self.classes)
        soft, usable = soft_targets(np.maximum(votes, 0), self.classes, self.labels, own_label_votes,
                                     neutral_vote_weight)
        train = self.splits == "train"
        keep = has & np.where(train, usable, majority >= 0)
        out = self.select(keep)
        out.labels = np.where(majority[keep] >= 0, majority[keep], soft[keep].argmax(1))
        out.soft = soft[keep]
        return out

    def split(self, name: str) -> "Dataset":
        return self.select(self.splits == name)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split, per class sample counts (only splits present)."""
        out = {}
        for s in SPLITS:
            lab = self.labels[self.splits == s]
            if lab.size:
                c = np.bincount(lab, minlength=len(self.classes))
                out[s] = {k: int(v) for k, v in zip(self.classes, c)}
        return out

    def exclude(self, ids, keep=("test",)) -> "Dataset":
        """Drop samples whose id is in `ids` (e.g. the audit's exclusion list), except in the
        splits named in `keep`: a given test split stays whole, so scores stay comparable."""
        hit = np.isin(self.ids, np.asarray(list(ids), dtype=self.ids.dtype))
        return self.select(~(hit & ~np.isin(self.splits, list(keep))))

    def merged_splits(self, names, into: str = "train") -> "Dataset":
        """A copy where every split in `names` is renamed `into` (e.g. train on train + val)."""
        out = self.select(np.ones(len(self), bool))
        out.splits = np.where(np.isin(self.splits, list(names)), into, self.splits)
        return out

    def with_holdout(self, name: str, fraction: float, seed: int = 0, source: str = "train") -> "Dataset":
        """Return a copy where a stratified, seeded `fraction` of split `source` becomes split
        `name`, unless the data already has that split or `fraction` is 0."""
        if fraction <= 0 or (self.splits == name).any():
            return self
        idx = np.flatnonzero(self.splits == source)
        chosen = stratified_holdout(self.labels[idx], fraction, seed)
        out = self.select(np.ones(len(self), bool))
        out.splits = self.splits.astype(object)  # room for any split name
        out.splits[idx[chosen]] = name
        out.splits = out.splits.astype(str)
        return out

    def with_validation(self, fraction: float = 0.1, seed: int = 0) -> "Dataset":
        """A stratified validation split carved from train (if the data has none)."""
        return self.with_holdout("val", fraction, seed)

    def with_split_file(self, path: str) -> "Dataset":
        """Splits as a split file (`write_split_file`) states them; ids it does not list are dropped."""
        assigned = read_split_file(path)
        known = np.array([i in assigned for i in self.ids.tolist()], bool)
        out = self.select(known)
        out.splits = np.array([assigned[i] for i in out.ids.tolist()], dtype=str)
        return out

    def relabeled(self, classes: list[str]) -> "Dataset":
        """The samples whose class is in `classes`, labelled by index into `classes` (e.g. a
        dataset with contempt read by a 7-class model: the contempt photos are left out)."""
        index = {c: i for i, c in enumerate(classes)}
        own = np.array([index.get(c, -1) for c in self.classes], np.int64)
        out = self.select(own[self.labels] >= 0)
        out.labels = own[out.labels]
        if out.soft is not None:
            cols = np.array([self.classes.index(c) if c in self.classes else -1 for c in classes])
            soft = np.where(cols >= 0, out.soft[:, np.maximum(cols, 0)], 0.0)
            out.soft = (soft / np.maximum(soft.sum(1, keepdims=True), 1e-9)).astype(np.float32)
        out.classes = list(classes)
        return out


def seeded_split(labels: np.ndarray, val: float, test: float, seed: int,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Split names for a whole labelled set, stratified per class and seeded.

    Without `groups`: in every class a seeded permutation gives the first round(test * n) samples
    to test, the next round(val * n) to val, the rest to train. With `groups` (e.g. the person in
    each photo), a group never straddles two splits: groups are taken largest first (ties in
    seeded order) and each goes to the split whose per-class targets it fills best."""
    if groups is None:
        rng = np.random.default_rng(seed)
        out = np.full(len(labels), "train", dtype=object)
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            n_test, n_val = int(round(test * members.size)), int(round(val * members.size))
            out[members[:n_test]] = "test"
            out[members[n_test:n_test + n_val]] = "val"
        return out.astype(str)
    names = ("test", "val", "train")
    n_classes = int(labels.max()) + 1
    total = np.bincount(labels, minlength=n_classes).astype(float)
    target = np.stack([total * test, total * val, total * (1 - test - val)])
    have = np.zeros_like(target)
    keys, inverse = np.unique(groups, return_inverse=True)
    per_group = np.zeros((len(keys), n_classes))
    np.add.at(per_group, (inverse, labels), 1)
    order = np.random.default_rng(seed).permutation(len(keys))
    order = order[np.argsort(-per_group[order].sum(1), kind="stable")]
    choice = np.empty(len(keys), np.int64)
    for g in order:
        need = ((target - have) / np.maximum(target, 1)) @ per_group[g]
        choice[g] = int(np.argmax(need))
        have[choice[g]] += per_group[g]
    return np.array(names, dtype=str)[choice[inverse]]


def write_split_file(ds: Dataset, path: str, val: float, test: float, seed: int,
                     group: str = "") -> dict[str, dict[str, int]]:
    """Write the seeded, stratified split of `ds` (all its samples) as `id,split` lines, with the
    rule in the first line, so every number measured on it can be reproduced. `group` is a regular
    expression whose first group, matched in each file's name without extension, names the group
    (e.g. the person) that must stay in one split. Returns the counts."""
    order = np.argsort(ds.ids)
    ids, labels = ds.ids[order], ds.labels[order]
    splits = seeded_split(labels, val, test, seed, file_groups(ids.tolist(), group) if group else None)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        rule = f", grouped by {group!r} on the file name" if group else ""
        f.write(f"# emoscope data split: stratified per class over the ids sorted by name{rule}, "
                f"seed {seed}, test {test}, val {val}, rest train\n")
        f.writelines(f"{i},{s}\n" for i, s in zip(ids.tolist(), splits.tolist()))
    os.replace(tmp, path)
    return {s: {c: int(((splits == s) & (labels == k)).sum()) for k, c in enumerate(ds.classes)} for s in SPLITS}


def file_groups(ids: list[str], group: str) -> np.ndarray:
    """Each id's group: the first group of the regular expression `group` matched in the file's name
    without extension (the whole name where it does not match)."""
    pattern = re.compile(group)
    stems = [os.path.splitext(i.rsplit("/", 1)[-1])[0] for i in ids]
    return np.array([(m.group(1) if (m := pattern.match(s)) else s) for s in stems])


GROUP_RULE = re.compile(r", grouped by ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") on the file name")


def split_file_grouping(path: str) -> str | None:
    """The regular expression that kept each group (e.g. person) in one split, as the split file's
    first line states it (`write_split_file`), or None for a split file without one."""
    with open(path) as f:
        first = f.readline()
    m = GROUP_RULE.search(first) if first.startswith("#") else None
    return ast.literal_eval(m.group(1)) if m else None


def read_split_file(path: str) -> dict[str, str]:
    """id -> split from a split file."""
    if not os.path.exists(path):
        raise ValueError(f"split file {path} not found (paths are relative to where you run)")
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                sid, split = line.rstrip("\n").rsplit(",", 1)
                if split not in SPLITS:
                    raise ValueError(f"{path}: split {split!r} for {sid} is not one of {', '.join(SPLITS)}")
                out[sid] = split
    return out


HOLDOUT_KEYS = ("exclude", "train_splits", "val_split", "test_split", "train_fraction", "seed")


def training_view(ds: Dataset, exclude: str = "", train_splits=("train",), val_split: float = 0.1,
                  test_split: float = 0.0, train_fraction: float = 1.0, seed: int = 0) -> Dataset:
    """The splits a training run sees, reproducible from its config (`HOLDOUT_KEYS`) by export and
    evaluation: drop `exclude`d ids (never from a given test split), fold `train_splits` into
    train, carve test and val from train (seeded, stratified), then keep `train_fraction` of
    train. When val is folded in, a `val_split` share of the original val stays out for choosing
    checkpoints: a warm start has seen all of train, so only unseen images judge it fairly."""
    if exclude:
        if not os.path.exists(exclude):
            raise ValueError(f"exclusion list {exclude} not found (paths are relative to where you run)")
        with open(exclude) as f:
            ids = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        ds = ds.exclude(ids)
    if list(train_splits) != ["train"]:
        if "val" in train_splits:
            ds = ds.with_holdout("kept_val", val_split, seed, source="val")
        ds = ds.merged_splits(train_splits).merged_splits(["kept_val"], "val")
    ds = ds.with_holdout("test", test_split, seed + 1).with_holdout("val", val_split, seed)
    if train_fraction < 1:
        ds = ds.with_holdout("unused", 1 - train_fraction, seed + 2)
    return ds


@dataclass
class Source:
    """One training source of a run, split and labelled in the run's classes."""

    name: str
    data: Dataset
    weight: float      # share of each epoch's draws (the primary source: what the others leave)
    distill: bool      # whether teachers' predictions blend into its targets
    class_weights: dict[str, float] = field(default_factory=dict)  # sampling factor per class


def run_sources(cfg: dict, verbose: bool = False) -> list[Source]:
    """The data a run trains and validates on, reproducible from its config: the primary dataset
    (`data`, split by `HOLDOUT_KEYS`) first, then each of `sources` (its own split file; photos
    cut to their largest detected face by the run's crop rule when `faces`), relabelled into the
    primary's classes (classes the primary lacks, e.g. contempt, are left out)."""
    size, color = cfg["img_size"], cfg["color"]
    primary = load_dataset(cfg["data"], size, color, verbose=verbose)
    if cfg.get("votes"):
        primary = primary.with_votes(cfg["votes"], cfg.get("own_label_votes", 0.0),
                                     cfg.get("neutral_vote_weight", 1.0))
    primary = training_view(primary, **{k: cfg[k] for k in HOLDOUT_KEYS if k in cfg})
    extra = cfg.get("sources") or []
    out = [Source(source_name(cfg["data"]), primary, 1.0 - sum(s["weight"] for s in extra), True)]
    for s in extra:
        ds = load_dataset(s["data"], size, color, verbose=verbose,
                          faces=CropRule.from_dict(cfg.get("crop")) if s.get("faces") else None)
        if s.get("split_file"):
            ds = ds.with_split_file(s["split_file"])
        out.append(Source(source_name(s["data"]), ds.relabeled(primary.classes), s["weight"],
                          bool(s.get("distill")), dict(s.get("class_weights") or {})))
    if out[0].weight <= 0:
        raise ValueError("the extra sources' weights must add up to less than 1 (the rest is the primary's)")
    return out


def source_name(path: str) -> str:
    """A source's short name: its file or folder name without extension (e.g. 'web_faces')."""
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Deterministic stratified choice of round(fraction * n_c) indices from every class c."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(fraction * members.size))
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _resolve_classes(raw: list[str], source: str, skipped: list[Skipped],
                     samples: list[RawSample]) -> tuple[list[str], dict[str, str], list[RawSample]]:
    """Decide the class vocabulary: canonical expressions if the folders name expressions,
    otherwise the folder names themselves (e.g. a gender set)."""
    names = sorted(set(raw))
    canon = {n: canonical_label(n) for n in names}
    if not any(canon.values()):
        return [n.lower() for n in names], {n: n.lower() for n in names}, samples
    unknown = sorted(n for n, c in canon.items() if c is None)
    if unknown:
        counts = Counter(s.raw_label for s in samples if s.raw_label in unknown)
        for n in unknown:
            print(f"warning: {source}: class folder {n!r} ({counts[n]} files) is not an expression "
                  f"label; skipped (known: {', '.join(EXPRESSIONS)}, {CONTEMPT})", file=sys.stderr)
        skipped.extend(Skipped(s.id, f"unknown class {s.raw_label!r}") for s in samples if s.raw_label in unknown)
        samples = [s for s in samples if s.raw_label not in unknown]
    classes = list(EXPRESSIONS) + ([CONTEMPT] if CONTEMPT in canon.values() else [])
    return classes, {n: c for n, c in canon.items() if c}, samples


class FaceCropper:
    """Training views that match the runtime: find the largest face in a photo with the runtime's
    detector (YuNet, default settings) and cut it out by the model's crop rule."""

    def __init__(self, rule: CropRule, detector_model: str | None = None):
        from ..runtime.detector import YuNetDetector
        self.rule = rule
        self.detector = YuNetDetector(detector_model)

    def __call__(self, bgr: np.ndarray, size: int, color: str) -> np.ndarray:
        dets = self.detector.detect(bgr)
        if not dets:
            raise ImageDecodeError("no face found")
        best = max(dets, key=lambda d: d.box[2] * d.box[3])
        return crop_face(bgr, best.box, (size, size), color, self.rule)


def _decode(tree: FileTree, s: RawSample, size: int, color: str,
            faces: FaceCropper | None = None) -> tuple[np.ndarray, tuple[int, int], str]:
    if s.pixels is not None:
        img, mode = s.pixels, "L"
    else:
        pil = open_image(tree.read(s.id))
        mode = pil.mode
        if faces is not None:
            return faces(pil_to_array(pil, "bgr"), size, color), pil.size, mode
        img = pil_to_array(pil, color)
    h, w = img.shape[:2]
    if color == "rgb" and img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img, (w, h), mode


def _progress(it, total: int, desc: str):
    try:
        from tqdm import tqdm
        return tqdm(it, total=total, desc=desc, unit="img", leave=False, disable=None)
    except ImportError:  # tqdm is a core dependency; this only guards stripped installs
        return it


def _build(path: str, size: int, color: str, faces: FaceCropper | None = None) -> Dataset:
    tree = FileTree(path)
    skipped: list[Skipped] = []
    layout, it = iter_samples(tree, skipped)
    samples = list(it)
    if not samples:
        raise DatasetError(f"{path}: no samples found ({len(skipped)} files skipped)")
    classes, mapping, samples = _resolve_classes([s.raw_label for s in samples], path, skipped, samples)
    index = {c: i for i, c in enumerate(classes)}
    shape = (size, size) if color == "gray" else (size, size, 3)
    images = np.empty((len(samples),) + shape, np.uint8)
    keep = np.zeros(len(samples), bool)
    sizes = np.zeros((len(samples), 2), np.int32)
    modes = np.empty(len(samples), dtype=object)
    for i, s in enumerate(_progress(samples, len(samples), f"decoding {os.path.basename(path)}")):
        try:
            images[i], sizes[i], modes[i] = _decode(tree, s, size, color, faces)
            keep[i] = True
        except ImageDecodeError as exc:
            skipped.append(Skipped(s.id, str(exc)))
    labels = np.array([index[mapping[s.raw_label]] for s in samples], np.int64)
    ds = Dataset(images[keep], labels[keep], np.array([s.split for s in samples])[keep],
                 np.array([s.id for s in samples])[keep], classes, layout, os.path.abspath(path),
                 sizes[keep], modes[keep].astype(str), skipped)
    if len(ds) == 0:
        raise DatasetError(f"{path}: no readable images ({len(skipped)} skipped)")
    return ds


def _cache_path(path: str, size: int, color: str, faces: CropRule | None) -> str:
    key = hashlib.sha1(f"{CACHE_VERSION}|{size}|{color}|{faces}|{FileTree(path).fingerprint()}".encode()).hexdigest()[:16]
    kind = "faces" if faces else color
    return os.path.join(cache_dir(), "datasets", f"{os.path.basename(path)}-{size}-{kind}-{key}.npz")


def _save(ds: Dataset, file: str) -> None:
    os.makedirs(os.path.dirname(file), exist_ok=True)
    meta = {"classes": ds.classes, "layout": ds.layout, "source": ds.source,
            "skipped": [[s.id, s.reason] for s in ds.skipped]}
    tmp = file + f".tmp{os.getpid()}.npz"
    np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits, ids=ds.ids,
             orig_sizes=ds.orig_sizes, orig_modes=ds.orig_modes, meta=np.array(json.dumps(meta)))
    os.replace(tmp, file)


def _load(file: str) -> Dataset:
    with np.load(file, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return Dataset(z["images"], z["labels"], z["splits"], z["ids"], meta["classes"], meta["layout"],
                       meta["source"], z["orig_sizes"], z["orig_modes"],
                       [Skipped(i, r) for i, r in meta["skipped"]])


def load_dataset(path: str, size: int = IMG_SIZE, color: str = "gray", cache: bool = True,
                 verbose: bool = True, faces: CropRule | None = None, detector_model: str | None = None) -> Dataset:
    """Read a dataset (folder, zip or CSV; layout auto-detected), resized to size x size.

    With `faces` (a crop rule), each photo becomes its largest detected face cut out by that rule,
    as the runtime would see it; photos where the detector finds no face are skipped.
    Unreadable files are skipped, reported on stderr and listed in ``Dataset.skipped``.
    """
    if color not in ("gray", "rgb"):
        raise ValueError(f"color must be 'gray' or 'rgb', got {color!r}")
    file = _cache_path(path, size, color, faces) if cache else None
    if file and os.path.exists(file):
        return _load(file)
    ds = _build(path, size, color, FaceCropper(faces, detector_model) if faces else None)
    if verbose and ds.skipped:
        print(f"{path}: skipped {len(ds.skipped)} file(s):", file=sys.stderr)
        for s in ds.skipped[:20]:
            print(f"  {s.id}: {s.reason}", file=sys.stderr)
        if len(ds.skipped) > 20:
            print(f"  ... and {len(ds.skipped) - 20} more", file=sys.stderr)
    if file:
        _save(ds, file)
    return ds
