"""What to analyse: command-line inputs (files, folders, globs, list files) expanded to media files."""

from __future__ import annotations

import csv
import glob
import os
import sys

from PIL import Image

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".y4m"}
LIST_EXTS = {".txt", ".lst", ".csv"}  # files that list paths, one per line (CSV: a path/source/file column or the first)
PATH_COLUMNS = ("path", "source", "file", "video", "image")


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTS


def image_exts() -> set[str]:
    Image.init()
    return {ext.lower() for ext in Image.registered_extensions()}


def read_list_file(path: str) -> list[str]:
    """Paths listed in a .txt/.lst file (one per line, '#' comments) or a .csv file (its path,
    source, file, video or image column, else its first column). Relative paths are relative to
    the list file's folder."""
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        if path.lower().endswith(".csv"):
            rows = list(csv.reader(f))
            header = [h.strip().lower() for h in rows[0]] if rows else []
            col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
            entries = [r[col or 0] for r in rows[1 if col is not None else 0:] if r]
        else:
            entries = [line for line in f if not line.lstrip().startswith("#")]
    entries = [e.strip() for e in entries if e.strip()]
    return [e if os.path.isabs(e) or "://" in e else os.path.join(base, e) for e in entries]


def expand_inputs(inputs: list[str], lists: bool = True, missing: list[str] | None = None) -> list[str]:
    """Files to analyse, in a stable order and each once: files as given; folders walked
    recursively for images and videos (other files ignored); glob patterns; and, with `lists`,
    .txt/.lst/.csv files read as lists of paths. Inputs that match nothing are reported on stderr
    and appended to `missing` when given."""
    media = image_exts() | VIDEO_EXTS
    files: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, names in os.walk(item):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names)
                          if not n.startswith(".") and os.path.splitext(n)[1].lower() in media]
        elif lists and os.path.isfile(item) and os.path.splitext(item)[1].lower() in LIST_EXTS:
            files += expand_inputs(read_list_file(item), False, missing)
        elif os.path.exists(item):
            files.append(item)
        else:
            matched = sorted(m for m in glob.glob(item, recursive=True) if os.path.isfile(m))
            if not matched:
                print(f"warning: {item}: no such file, folder or matching glob", file=sys.stderr)
                if missing is not None:
                    missing.append(item)
            files += matched
    return list(dict.fromkeys(files))
