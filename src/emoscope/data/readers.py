"""Find the samples in a dataset download, whatever its layout, straight from a folder or a zip.

Layouts (auto-detected):
- ``fer2013-kaggle``: ``train/<class>/*`` and ``test/<class>/*``; ``PublicTest_*`` / ``PrivateTest_*``
  file names split ``test/`` into its validation and test halves.
- ``fer2013-csv``: the original ``fer2013.csv`` (``emotion,pixels,Usage``).
- ``oheix``: ``images/train/<class>/*`` and ``images/validation/<class>/*``.
- ``split-folders``: ``<split>/<class>/*`` with split names train/val/validation/test.
- ``class-folders``: any ``<root>/<class>/*`` tree; every sample is ``train`` until split.

A reader yields :class:`RawSample` records; decoding happens in :mod:`emoscope.data.dataset`.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterator

import numpy as np

from ..labels import FER2013_CSV_CODES

SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "publictest": "val",
    "test": "test", "testing": "test", "privatetest": "test",
}
FER_SIDE = 48


class DatasetError(ValueError):
    """The dataset cannot be read at all (missing, empty, no recognisable layout)."""


@dataclass
class RawSample:
    id: str            # stable id: path inside the source, or ``csv:<row>``
    raw_label: str     # class name as the source spells it
    split: str         # train / val / test
    pixels: np.ndarray | None = None  # decoded pixels (CSV); None: read file `id` from the tree


@dataclass
class Skipped:
    id: str
    reason: str


class FileTree:
    """Uniform read access to a folder or a zip file."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        if not os.path.exists(self.path):
            raise DatasetError(f"{path}: no such file or folder")
        self.zip = zipfile.ZipFile(self.path) if zipfile.is_zipfile(self.path) else None
        if self.zip is None and not os.path.isdir(self.path) and not self.path.endswith(".csv"):
            raise DatasetError(f"{path}: not a folder, a .zip or a .csv file")

    def names(self) -> list[str]:
        """Relative POSIX paths of all files, hidden files and macOS zip debris left out."""
        if self.zip is not None:
            names = [n for n in self.zip.namelist() if not n.endswith("/")]
        elif os.path.isdir(self.path):
            names = []
            for root, dirs, files in os.walk(self.path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                rel = os.path.relpath(root, self.path)
                for f in sorted(files):
                    names.append(f if rel == "." else PurePosixPath(*rel.split(os.sep), f).as_posix())
        else:
            names = [os.path.basename(self.path)]
        return [n for n in names
                if "__MACOSX" not in n and not PurePosixPath(n).name.startswith(".")]

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        full = self.path if not os.path.isdir(self.path) else os.path.join(self.path, *name.split("/"))
        with open(full, "rb") as f:
            return f.read()

    def fingerprint(self) -> str:
        """Cheap identity of the source's contents for cache keys (names, sizes, mtimes)."""
        st = os.stat(self.path)
        if not os.path.isdir(self.path):
            return f"{self.path}|{st.st_size}|{st.st_mtime_ns}"
        parts = [self.path]
        for n in self.names():
            s = os.stat(os.path.join(self.path, *n.split("/")))
            parts.append(f"{n}|{s.st_size}|{s.st_mtime_ns}")
        return "\n".join(parts)


def _is_fer_csv(tree: FileTree, name: str) -> bool:
    if not name.lower().endswith(".csv"):
        return False
    head = tree.read(name)[:200].decode("utf-8", "replace").lower()
    return "pixels" in head.splitlines()[0] if head else False


def detect_layout(tree: FileTree, names: list[str]) -> str:
    """Name the layout of a file list (see the module docstring)."""
    csvs = [n for n in names if _is_fer_csv(tree, n)]
    if csvs:
        return "fer2013-csv"
    dirs = {tuple(PurePosixPath(n).parts[:-1]) for n in names}
    if not any(dirs):
        raise DatasetError(f"{tree.path}: no class folders found (expected <class>/<image> files)")
    split_dirs = {d[-2].lower() for d in dirs if len(d) >= 2 and d[-2].lower() in SPLIT_NAMES}
    if split_dirs:
        if any(PurePosixPath(n).name.startswith(("PublicTest_", "PrivateTest_")) for n in names):
            return "fer2013-kaggle"
        if any(len(d) >= 3 and d[-3].lower() == "images" for d in dirs) and "validation" in split_dirs:
            return "oheix"
        return "split-folders"
    return "class-folders"


def _split_of(parts: tuple[str, ...], layout: str) -> str:
    split = SPLIT_NAMES.get(parts[-3].lower(), "train") if len(parts) >= 3 else "train"
    if layout == "fer2013-kaggle" and split == "test":
        name = parts[-1]
        if name.startswith("PublicTest_"):
            return "val"
    return split if layout != "class-folders" else "train"


def _iter_csv(tree: FileTree, name: str, skipped: list[Skipped]) -> Iterator[RawSample]:
    text = io.TextIOWrapper(io.BytesIO(tree.read(name)), encoding="utf-8", errors="replace")
    reader = csv.DictReader(text)
    fields = {f.strip().lower(): f for f in (reader.fieldnames or [])}
    if "emotion" not in fields or "pixels" not in fields:
        raise DatasetError(f"{name}: a FER2013 CSV needs 'emotion' and 'pixels' columns, has {reader.fieldnames}")
    usage_key = fields.get("usage")
    for row_no, row in enumerate(reader, start=2):  # row 1 is the header
        sid = f"{name}:{row_no}"
        try:
            code = int(row[fields["emotion"]])
            label = FER2013_CSV_CODES[code]
        except (ValueError, IndexError, TypeError):
            skipped.append(Skipped(sid, f"emotion code {row[fields['emotion']]!r} is not 0-6"))
            continue
        try:
            pixels = np.array(row[fields["pixels"]].split(), dtype=np.int64)
        except ValueError:
            skipped.append(Skipped(sid, "pixels column holds non-numbers"))
            continue
        if pixels.size != FER_SIDE * FER_SIDE or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
            skipped.append(Skipped(sid, f"{pixels.size} pixels (expected {FER_SIDE * FER_SIDE} values in 0-255)"))
            continue
        usage = (row.get(usage_key) or "Training").strip().lower() if usage_key else "training"
        split = SPLIT_NAMES.get(usage)
        if split is None:
            skipped.append(Skipped(sid, f"unknown Usage {usage!r}"))
            continue
        yield RawSample(sid, label, split, pixels.astype(np.uint8).reshape(FER_SIDE, FER_SIDE))


def iter_samples(tree: FileTree, skipped: list[Skipped]) -> tuple[str, Iterator[RawSample]]:
    """Detect the layout and return it with an iterator over raw samples.

    Files that cannot belong to any class (loose files at the top) are added to `skipped`.
    """
    names = tree.names()
    if not names:
        raise DatasetError(f"{tree.path}: empty (no files)")
    layout = detect_layout(tree, names)
    if layout == "fer2013-csv":
        csv_name = next(n for n in names if _is_fer_csv(tree, n))

        def gen_csv() -> Iterator[RawSample]:
            yield from _iter_csv(tree, csv_name, skipped)
        return layout, gen_csv()

    def gen_files() -> Iterator[RawSample]:
        for n in names:
            parts = PurePosixPath(n).parts
            if len(parts) < 2:
                skipped.append(Skipped(n, "file outside any class folder"))
                continue
            yield RawSample(n, parts[-2], _split_of(parts, layout))
    return layout, gen_files()
