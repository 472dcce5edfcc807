"""What is in a dataset: counts per split and class, imbalance, source image sizes and modes,
with a class-distribution chart per split and a grid of samples per class."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np

from ..report import png_tag, pyplot, write_html
from .dataset import SPLITS, Dataset


def stats(ds: Dataset) -> dict:
    counts = ds.counts()
    imbalance = {s: (max(c.values()) / max(1, min(v for v in c.values() if v > 0)) if any(c.values()) else None)
                 for s, c in counts.items()}
    sizes = Counter(f"{w}x{h}" for w, h in ds.orig_sizes.tolist())
    w, h = ds.orig_sizes[:, 0], ds.orig_sizes[:, 1]
    return {
        "source": ds.source, "layout": ds.layout, "source_folders": source_folders(ds), "classes": ds.classes, "total": len(ds),
        "splits": {s: int((ds.splits == s).sum()) for s in SPLITS if (ds.splits == s).any()},
        "counts": counts, "imbalance_ratio": {s: round(v, 2) for s, v in imbalance.items() if v},
        "image_sizes": {"most_common": dict(sizes.most_common(5)), "distinct": len(sizes),
                        "min_wh": [int(w.min()), int(h.min())], "max_wh": [int(w.max()), int(h.max())]},
        "modes": dict(Counter(ds.orig_modes.tolist())),
        "skipped": [{"id": s.id, "reason": s.reason} for s in ds.skipped],
    }


def source_folders(ds: Dataset) -> dict[str, int]:
    """Counts by the folder a sample came from, and by FER2013's PublicTest/PrivateTest file prefix,
    so our train/val/test can be checked against the download's own train/ and test/."""
    out: Counter = Counter()
    for sid in ds.ids.tolist():
        parts = sid.split("/")
        if len(parts) >= 3:
            out[parts[-3]] += 1
        prefix = parts[-1].split("_")[0]
        if prefix in ("PublicTest", "PrivateTest"):
            out[f"{parts[-3] if len(parts) >= 3 else ''}/{prefix}"] += 1
    return dict(sorted(out.items()))


def plot_counts(st: dict, path: str) -> str:
    plt = pyplot()
    splits = list(st["counts"])
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, s in zip(axes[0], splits):
        c = st["counts"][s]
        bars = ax.bar(list(c), list(c.values()), color="#4c78a8")
        ax.bar_label(bars, fontsize=7)
        ax.set_title(f"{s} ({sum(c.values()):,})")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.suptitle("class distribution per split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_grid(ds: Dataset, path: str, per_class: int = 8, seed: int = 0) -> str:
    plt = pyplot()
    rng = np.random.default_rng(seed)
    k = len(ds.classes)
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 1.0), squeeze=False)
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        pick = rng.choice(idx, min(per_class, idx.size), replace=False) if idx.size else []
        for j in range(per_class):
            ax = axes[ci, j]
            ax.axis("off")
            if j < len(pick):
                img = ds.images[pick[j]]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        axes[ci, 0].text(-0.1, 0.5, name, transform=axes[ci, 0].transAxes, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(left=0.12, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def inspect_report(ds: Dataset, out: str, per_class: int = 8) -> tuple[dict, str]:
    os.makedirs(out, exist_ok=True)
    st = stats(ds)
    counts_png = plot_counts(st, os.path.join(out, "class_distribution.png"))
    grid_png = plot_grid(ds, os.path.join(out, "samples.png"), per_class)
    rows = "".join(f"<tr><th>{s}</th>" + "".join(f"<td>{v:,}</td>" for v in c.values()) +
                   f"<td>{sum(c.values()):,}</td><td>{st['imbalance_ratio'].get(s, '')}</td></tr>"
                   for s, c in st["counts"].items())
    head = "<tr><th>split</th>" + "".join(f"<th>{c}</th>" for c in ds.classes) + "<th>total</th><th>imbalance</th></tr>"
    info = (f"<p>Layout <code>{st['layout']}</code>, {st['total']:,} images, {len(st['skipped'])} skipped. "
            f"Source sizes: {st['image_sizes']['most_common']} ({st['image_sizes']['distinct']} distinct); "
            f"modes: {st['modes']}.</p>")
    html_path = write_html(os.path.join(out, "report.html"), f"Dataset: {os.path.basename(ds.source)}", [
        ("Overview", info + f"<table>{head}{rows}</table>"),
        ("Class distribution", png_tag(counts_png, "class distribution")),
        (f"Samples ({per_class} per class, train split first)", png_tag(grid_png, "sample grid")),
    ])
    return st, html_path
