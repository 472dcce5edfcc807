"""`compare`: one table over many training runs (model, size, cost, validation and test scores,
latency) as Markdown, HTML and CSV, with accuracy-vs-parameters and accuracy-vs-epoch plots."""

from __future__ import annotations

import glob
import json
import os
import sys
import time

import numpy as np
import pandas as pd

from ..data import load_dataset
from ..metrics import summary
from ..report import png_tag, pyplot, table, write_html
from .evaluator import Scorer

COLUMNS = ["run", "model", "params_m", "macs_m", "epochs", "train_min", "best_val_acc", "test_acc", "test_macro_f1",
           "latency_ms"]


def find_runs(patterns: list[str]) -> list[str]:
    """Run folders (holding config.json and history.json) among the given paths or globs, in order."""
    runs: list[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            if os.path.exists(os.path.join(path, "history.json")) and path not in runs:
                runs.append(path)
    return runs


def latency_ms(model, in_chans: int, size: int, repeats: int = 30) -> float:
    """Median time of one single-face forward pass (torch, fp32, this process's threads)."""
    import torch
    x = torch.zeros(1, in_chans, size, size)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def run_row(run: str, split: str = "test", score: bool = True) -> tuple[dict, list[dict]]:
    """One table row and the run's history. Test scores need the run's data (skipped if absent)."""
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(run, "history.json")) as f:
        history = json.load(f)
    summ = {}
    if os.path.exists(os.path.join(run, "summary.json")):
        with open(os.path.join(run, "summary.json")) as f:
            summ = json.load(f)
    row = {"run": os.path.basename(os.path.normpath(run)), "model": cfg["model"],
           "params_m": summ.get("params", np.nan) / 1e6, "macs_m": summ.get("macs", np.nan) / 1e6,
           "epochs": len(history), "train_min": sum(h["epoch_seconds"] for h in history) / 60,
           "best_val_acc": max(h["val_acc"] for h in history), "test_acc": np.nan, "test_macro_f1": np.nan,
           "latency_ms": np.nan}
    if score and os.path.exists(os.path.join(run, "best.pt")):
        scorer = Scorer(run)
        row["latency_ms"] = latency_ms(scorer.model, 1 if scorer.color == "gray" else 3, scorer.size)
        try:
            ds = scorer.splits(load_dataset(cfg["data"], scorer.size, scorer.color, verbose=False))
        except (OSError, ValueError) as exc:
            print(f"compare: {row['run']}: no test scores ({exc})", file=sys.stderr)
        else:
            part = ds.split(split)
            if len(part):
                s = summary(part.labels, scorer.logits(part.images).argmax(1), len(scorer.classes))
                row["test_acc"], row["test_macro_f1"] = s["accuracy"], s["macro_f1"]
    return row, history


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers to 3 decimals, blanks for missing)."""
    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3f}"
        return str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_params(df: pd.DataFrame, path: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(df["params_m"], df["best_val_acc"], label="best validation", marker="o")
    if df["test_acc"].notna().any():
        ax.scatter(df["params_m"], df["test_acc"], label="test (best checkpoint)", marker="s")
    for r in df.itertuples():
        ax.annotate(r.run, (r.params_m, r.best_val_acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs model size")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy_vs_epoch(histories: dict[str, list[dict]], path: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, hist in histories.items():
        ax.plot([h["epoch"] for h in hist], [h["val_acc"] for h in hist], label=name, lw=1.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy vs epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(runs: list[str], out: str, split: str = "test", score: bool = True) -> pd.DataFrame:
    """Write compare.{csv,md,html} and the two plots into `out`; return the table."""
    if not runs:
        raise ValueError("no run folders found (a run folder holds config.json and history.json)")
    os.makedirs(out, exist_ok=True)
    rows, histories = [], {}
    for run in runs:
        row, hist = run_row(run, split, score)
        rows.append(row)
        histories[row["run"]] = hist
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.to_csv(os.path.join(out, "compare.csv"), index=False)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(markdown(df))
    p1 = plot_accuracy_vs_params(df, os.path.join(out, "accuracy_vs_params.png"))
    p2 = plot_accuracy_vs_epoch(histories, os.path.join(out, "accuracy_vs_epoch.png"))
    write_html(os.path.join(out, "compare.html"), "emoscope: run comparison", [
        (f"Runs (test = the '{split}' split; latency = one face, torch fp32)", table(df)),
        ("Accuracy vs parameters", png_tag(p1, "accuracy vs parameters")),
        ("Validation accuracy vs epoch", png_tag(p2, "accuracy vs epoch")),
    ])
    return df
