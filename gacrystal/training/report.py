"""The run report of a training run: accuracy/loss curves, the confusion matrix and the
reliability diagram (PNG files), and the self-contained report.html that shows the whole run.
The pieces every page is made of are gacrystal.pictures's."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.images import CLASS_NAMES, DECISION_THRESHOLD, predicted_labels
from gacrystal.pictures import REPORT_STYLE, data_uri, html_table, pyplot

# What the report adds to the run folder (gacrystal.training.deliverables writes them).
CURVES_PNG = "training_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability.png"  # when the run was calibrated
TEST_REPORT_TXT = "test_report.txt"
REPORT_HTML = "report.html"  # the whole run on one page, every picture embedded

def plot_history(history: dict[str, list[float]], path: Path):
    """Training and validation accuracy and loss per epoch, side by side."""
    plt = pyplot()
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
    plt = pyplot()
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


def plot_reliability(labels, p_pg_raw, temperature: float, path: Path, title="Test set"):
    """The reliability diagram: accuracy against confidence per bin, for the raw and the
    calibrated P(PG), with each one's expected calibration error."""
    from gacrystal.calibration import apply_temperature, expected_calibration_error, reliability
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", label="perfectly calibrated")
    for p, name, marker in ((p_pg_raw, "raw", "o-"),
                            (apply_temperature(p_pg_raw, temperature), f"calibrated (T = {temperature:.2f})", "s-")):
        rows = [r for r in reliability(labels, p) if r["images"]]
        ece = expected_calibration_error(labels, p)
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], marker,
                label=f"{name}: ECE {ece:.3f}")
    ax.set(xlim=(0.5, 1.01), ylim=(0, 1.02), xlabel="confidence of the label",
           ylabel="share of labels that are right", title=f"{title}: reliability")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the run report: one self-contained HTML file (images embedded), opens offline anywhere ---

GALLERY_SIZE = 12  # misclassified and least-confident test images shown at most


def gallery_choice(labels, p_pg, size=GALLERY_SIZE) -> list[tuple[int, str]]:
    """(index, why) of the test images to show: every misclassified one, then the least
    confident of the rest (P(PG) nearest the threshold), at most `size`."""
    labels, p_pg = np.asarray(labels).astype(int), np.asarray(p_pg)
    wrong = [int(i) for i in np.flatnonzero(predicted_labels(p_pg) != labels)]
    unsure = [int(i) for i in np.argsort(np.abs(p_pg - DECISION_THRESHOLD)) if int(i) not in wrong]
    chosen = [(i, "misclassified") for i in wrong] + [(i, "least confident") for i in unsure]
    return chosen[:size]


def gallery_html(model, paths, labels, p_pg, ood_score, image_size, resize) -> str:
    """Cards of the chosen test images: the image, its Grad-CAM overlay, true class, P(PG)."""
    from html import escape
    from gacrystal.pictures import gradcam, gradcam_model, gradcam_overlay
    from gacrystal.images import read_rgb
    from PIL import Image
    chosen = gallery_choice(labels, p_pg)
    if not chosen:
        return "<p>No test images.</p>"
    pixels = np.stack([read_rgb(paths[i], image_size, resize) for i, _ in chosen]).astype(np.float32)
    cams = gradcam(gradcam_model(model), pixels)
    cards = []
    for (i, why), cam in zip(chosen, cams):
        original, overlaid = gradcam_overlay(paths[i], cam)
        cards.append(
            f'<div class="card"><img alt="image" src="{data_uri(Image.fromarray(original))}"> '
            f'<img alt="Grad-CAM" src="{data_uri(overlaid)}"><br>'
            f"{escape(Path(paths[i]).name)}<br>true {CLASS_NAMES[int(labels[i])]}, "
            f"P(PG) {p_pg[i]:.3f}, ood_score {ood_score[i]:.2f}<br><i>{why}</i></div>")
    return f'<div class="gallery">{"".join(cards)}</div>'


def calibration_html(record: dict | None, run_dir: Path) -> str:
    if not record:
        return "<p>No calibration.</p>"
    return (f"<p>Temperature scaling fitted on {record['fitted_on']}: T = "
            f"{record['temperature']:.3f}. Expected calibration error on the test split: "
            f"{record['ece_before']:.4f} raw, {record['ece_after']:.4f} calibrated. Labelling "
            "reports the calibrated P(PG); the label at 0.5 is the same either way.</p>"
            f'<img alt="reliability diagram" src="{data_uri(run_dir / RELIABILITY_PNG)}" '
            'style="max-width:480px">')


def write_html_report(path: Path, config: dict, history: dict, gallery: str, run_dir: Path,
                      leak_report: str | None):
    """report.html: settings, data and leak check, curves, per-epoch metrics, confusion matrix,
    test report, the gallery and the OOD threshold; every image embedded."""
    from html import escape
    from gacrystal.files import write_text_atomic
    settings = [{"setting": k, "value": v} for k, v in config["settings"].items()]
    counts = [{"split": split, **by_class, "total": sum(by_class.values())}
              for split, by_class in config["dataset"].items()]
    epoch_columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                     *[f"val_{m}_{c}" for m in ("precision", "recall", "f1") for c in CLASS_NAMES],
                     "val_f1_macro", "learning_rate", "epoch_seconds"]
    epochs = [{"epoch": i + 1, **{c: history[c][i] for c in epoch_columns[1:] if c in history}}
              for i in range(len(history["loss"]))]
    epoch_columns = [c for c in epoch_columns if c == "epoch" or c in history]
    ood = config.get("ood") or {}
    training = config["training"]
    sections = [
        ("Settings", html_table(settings, ["setting", "value"])),
        ("Data", html_table(counts, ["split", *CLASS_NAMES, "total"])
         + f"<h3>Leak check</h3><pre>{escape(leak_report or 'No leak report beside the split.')}</pre>"),
        ("Accuracy and loss", f'<img alt="training curves" src="{data_uri(run_dir / CURVES_PNG)}" style="max-width:100%">'),
        ("Per-epoch validation metrics", html_table(epochs, epoch_columns)),
        ("Confusion matrix (test)", f'<img alt="confusion matrix" src="{data_uri(run_dir / CONFUSION_PNG)}" style="max-width:420px">'),
        ("Test classification report", f"<pre>{escape((run_dir / TEST_REPORT_TXT).read_text())}</pre>"),
        ("Misclassified and least-confident test images", "<p>Left: the image; right: Grad-CAM "
         "of P(PG) (red: regions that raised it).</p>" + gallery),
        ("Calibration", calibration_html(config["model"].get("calibration"), run_dir)),
        ("Out-of-distribution check", f"<p>Images with ood_score above {ood.get('threshold', 1.0)} "
         f"are labelled UNKNOWN. Fitted on {ood.get('fit_images', '?')} training images; "
         f"{100 * ood.get('val_pass_rate', float('nan')):.1f}% of validation and "
         f"{100 * ood.get('test_pass_rate', float('nan')):.1f}% of test images pass. "
         f"Per-stage scales: {', '.join(f'{x:.3g}' for x in ood.get('stage_scales', []))}.</p>"),
    ]
    body = "".join(f'<h2 id="{escape(title.lower().replace(" ", "-"))}">{escape(title)}</h2>{html}'
                   for title, html in sections)
    title = f"Run {run_dir.name}"
    summary = (f"<p>{training['epochs_run']} epochs, stopped by {escape(training['stopped_by'])}; "
               f"test macro F1 {config['test']['test_f1_macro']:.4f}; "
               f"{training['elapsed_seconds']:.0f} s.</p>")
    write_text_atomic(path, f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                            f"<title>{escape(title)}</title><style>{REPORT_STYLE}</style></head>"
                            f"<body><h1>{escape(title)}</h1>{summary}{body}</body></html>")
