"""Plots of the evaluation report (matplotlib, saved as PNG)."""

from __future__ import annotations

import numpy as np

from ..report import pyplot


def confusion(cm: np.ndarray, classes: list[str], path: str) -> str:
    plt = pyplot()
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, data, title, fmt in ((axes[0], cm, "counts", "{:d}"), (axes[1], norm, "row-normalised (recall)", "{:.2f}")):
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                v = data[i, j]
                ax.text(j, i, fmt.format(int(v) if fmt == "{:d}" else v), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc(roc_data: dict, path: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for c, r in roc_data.items():
        ax.plot(r["fpr"], r["tpr"], label=f"{c} (AUC {r['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("one-vs-rest ROC")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability(rel: dict, path: str, temperature: float) -> str:
    plt = pyplot()
    edges = rel["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    nz = rel["count"] > 0
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.bar(centers[nz], rel["accuracy"][nz], width=edges[1] - edges[0], edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (T = {temperature:.3f}, ECE = {rel['ece']:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curves(history: list[dict], path: str) -> str:
    plt = pyplot()
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(ep, [h["train_loss"] for h in history], label="train")
    axes[0].plot(ep, [h["val_loss"] for h in history], label="validation")
    axes[0].set_title("loss")
    axes[1].plot(ep, [h["train_acc"] for h in history], label="train (augmented)")
    axes[1].plot(ep, [h["val_acc"] for h in history], label="validation")
    axes[1].plot(ep, [h["val_f1"] for h in history], label="validation macro-F1")
    axes[1].set_title("accuracy")
    axes[2].plot(ep, [h["lr"] for h in history])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def mistakes(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, classes: list[str], path: str,
             n: int = 24) -> str:
    """The most confident wrong predictions."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:n]
    return image_grid([images[i] for i in worst],
                      [f"true {classes[labels[i]]}\npred {classes[pred[i]]} {probs[i, pred[i]]:.0%}" for i in worst], path)


def image_grid(images: list[np.ndarray], titles: list[str], path: str, cols: int = 8) -> str:
    """Images (gray, or RGB) in a grid with a small title each."""
    plt = pyplot()
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, title in zip(axes.ravel(), images, titles):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
