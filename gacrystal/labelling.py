"""Labelling a folder: one pass over the images that labels them and, on the same decoded
batches, writes Grad-CAM overlays and collects the features of the embedding map; then the table,
the summary and the map.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.files import write_csv
from gacrystal.images import CLASS_NAMES, DECISION_THRESHOLD, UNKNOWN

COLUMNS = ["file", "label", "p_pg", "confidence", "ood_score", "error"]


def pooled_feature_model(classifier):
    """The backbone's globally pooled features of an image (the map's input); .keras/.h5 only."""
    import keras
    from gacrystal.model import pooling_layer
    if classifier.model is None:
        raise UserError("the embedding map needs a .keras or .h5 model (an .onnx file holds only "
                        "the classifier's output); pass --weights with the .keras file")
    return keras.Model(classifier.model.inputs, pooling_layer(classifier.model).output)


def label_files(classifier, files: list, batch_size: int = 32, threshold=DECISION_THRESHOLD,
                reject: bool = True, explain_dir: Path | None = None, features: bool = False,
                progress: bool = True) -> tuple[list[dict], list[Path], np.ndarray | None]:
    """Labels the files, decoding each once; on the same batches, optionally writes a Grad-CAM
    overlay per readable image into explain_dir and collects the pooled features.

    Returns:
        (records, overlays written, pooled features of the readable images or None).
    """
    from gacrystal.explain import gradcam_model, write_overlays
    grad_model = gradcam_model(classifier.model) if explain_dir is not None else None
    extractor = pooled_feature_model(classifier) if features else None
    overlays, pooled = [], []

    def on_batch(indices, pixels):
        model_input = classifier.model_input(pixels)
        if grad_model is not None:
            overlays.extend(write_overlays(grad_model, model_input, [files[i] for i in indices],
                                           explain_dir))
        if extractor is not None:
            pooled.append(np.asarray(extractor.predict_on_batch(model_input)))
    records = classifier.label(files, batch_size, threshold, progress=progress, reject=reject,
                               on_batch=on_batch)
    return records, overlays, np.concatenate(pooled) if pooled else None


def format_table(records: list[dict]) -> str:
    """An aligned text table of the records."""
    width = max([len(Path(r["file"]).name) for r in records] + [4])
    lines = [f"{'file':<{width}}  label    P(PG)   confidence  ood_score"]
    for r in records:
        name = Path(r["file"]).name
        if r["label"] == "ERROR":
            lines.append(f"{name:<{width}}  ERROR    {r['error']}")
        else:
            ood = "" if r["ood_score"] is None else f"{r['ood_score']:9.2f}"
            lines.append(f"{name:<{width}}  {r['label']:<7}  {r['p_pg']:.4f}  {r['confidence']:.4f}"
                         f"      {ood}")
    return "\n".join(lines)


def summary(records: list[dict]) -> str:
    counts = {name: sum(r["label"] == name for r in records)
              for name in (*CLASS_NAMES, UNKNOWN, "ERROR")}
    return f"{len(records)} images: " + ", ".join(f"{v} {k}" for k, v in counts.items())


def draw_embedding_map(records: list[dict], features: np.ndarray, out_dir: Path, clusters: int,
                       seed=42) -> list[dict]:
    """PCA of the readable images' pooled features to 2-D, k-means clusters, a labelled scatter
    plot (embedding_map.png) and a CSV (embedding_map.csv)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from gacrystal.report import plot_embedding_map
    usable = [r for r in records if r["label"] != "ERROR"]
    if len(usable) < max(clusters, 2):
        raise UserError(f"the map needs at least {max(clusters, 2)} readable images. "
                        f"Received: {len(usable)}")
    xy = PCA(n_components=2, random_state=seed).fit_transform(features)
    cluster = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(features)
    rows = [{"file": r["file"], "x": float(x), "y": float(y), "cluster": int(c),
             "label": r["label"], "p_pg": r["p_pg"]} for r, (x, y), c in zip(usable, xy, cluster)]
    write_csv(rows, out_dir / "embedding_map.csv", list(rows[0]))
    plot_embedding_map(rows, out_dir / "embedding_map.png")
    return rows
