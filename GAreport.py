"""Pictures of a training run: accuracy/loss curves and the confusion matrix (PNG files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from GAimages import CLASS_NAMES


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no window, works on servers and in CI
    import matplotlib.pyplot as plt
    return plt


def plot_history(history: dict[str, list[float]], path: Path):
    """Training and validation accuracy and loss per epoch, side by side."""
    plt = _pyplot()
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, title in ((acc_ax, "accuracy", "Accuracy"), (loss_ax, "loss", "Loss")):
        ax.plot(epochs, history[metric], "o-", label="training (augmented)")
        ax.plot(epochs, history[f"val_{metric}"], "s-", label="validation")
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_matrix(matrix: np.ndarray, path: Path, title="Test set"):
    """A 2x2 confusion matrix with class names, counts and row percentages in every cell."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.imshow(matrix, cmap="Blues")
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for (i, j), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        ax.text(j, i, f"{count}\n{100 * count / rows[i, 0]:.1f}%", ha="center", va="center",
                color="white" if dark else "black", fontsize=12)
    ax.set(xticks=range(len(CLASS_NAMES)), yticks=range(len(CLASS_NAMES)),
           xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES,
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_embedding_map(rows: list[dict], path: Path):
    """The 2-D map: one point per image, coloured by k-means cluster, labelled by file name."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 8))
    clusters = sorted({r["cluster"] for r in rows})
    colours = plt.get_cmap("tab10")
    for c in clusters:
        members = [r for r in rows if r["cluster"] == c]
        ax.scatter([r["x"] for r in members], [r["y"] for r in members], s=30,
                   color=colours(c % 10), label=f"cluster {c} ({len(members)})",
                   marker="o", edgecolor="none", alpha=0.8)
    small = 6 if len(rows) > 60 else 8
    for r in rows:
        ax.annotate(f"{Path(r['file']).stem} [{r['label']}]", (r["x"], r["y"]), fontsize=small,
                    alpha=0.7, xytext=(3, 3), textcoords="offset points")
    ax.set(title="Pooled backbone features: PCA to 2-D, k-means clusters",
           xlabel="principal component 1", ylabel="principal component 2")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
