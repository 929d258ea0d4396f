"""Labelling a folder: one pass over the images that labels them and, on the same decoded
batches, writes Grad-CAM overlays and collects the features of the embedding map; then the table,
the summary and the map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.files import write_csv
from gacrystal.images import CLASS_NAMES, DECISION_THRESHOLD, UNKNOWN
from gacrystal.labelling.review import REVIEW_PAGE

COLUMNS = ["file", "label", "p_pg", "confidence", "p_pg_raw", "ood_score", "error"]
THUMBNAIL = 128  # pixels a side on the review page


def pooled_feature_model(classifier):
    """The backbone's globally pooled features of an image (the map's input), for a .keras or
    .h5 model whose labelling pass gives no OOD features (one without its statistics)."""
    import keras
    from gacrystal.model import pooling_layer
    if classifier.model is None:
        raise UserError("the embedding map needs the backbone's features, which this .onnx file "
                        "does not give (the original's export); pass --weights with a .keras or "
                        ".h5 file")
    return keras.Model(classifier.model.inputs, pooling_layer(classifier.model).output)


@dataclass
class Labelled:
    """What one labelling pass over a folder gives."""
    records: list[dict]
    overlays: list[Path] = field(default_factory=list)  # Grad-CAM files written (--explain)
    features: np.ndarray | None = None  # pooled features of the readable images (the map)
    thumbnails: dict = field(default_factory=dict)  # index -> (image, Grad-CAM or None) PNG URIs


def label_files(classifier, files: list, batch_size: int = 32, threshold=DECISION_THRESHOLD,
                reject: bool = True, explain_dir: Path | None = None, features: bool = False,
                thumbnails: bool = False, progress: bool = True) -> Labelled:
    """Labels the files, decoding each once; on the same batches, optionally writes a Grad-CAM
    overlay per readable image into explain_dir, collects the pooled features (the map) and
    makes thumbnails with their Grad-CAM (the review page; Grad-CAM for .keras/.h5 models)."""
    from gacrystal.pictures import (data_uri, gradcam, gradcam_model, heat_map, overlay,
                                    write_overlays)
    from PIL import Image
    wants_gradcam = explain_dir is not None or (thumbnails and classifier.model is not None)
    grad_model = gradcam_model(classifier.model) if wants_gradcam else None
    result = Labelled(records=[])
    pooled, extractor = [], None

    def on_batch(indices, pixels, ood_features):
        nonlocal extractor
        model_input = classifier.model_input(pixels)
        cams = gradcam(grad_model, model_input) if grad_model is not None else [None] * len(indices)
        if explain_dir is not None:
            result.overlays.extend(write_overlays(cams, [files[i] for i in indices], explain_dir))
        if features:  # from the labelling pass itself; a pass of their own only where it has none
            from_pass = classifier.pooled_features(ood_features)
            if from_pass is None:
                extractor = extractor or pooled_feature_model(classifier)
                from_pass = extractor.predict_on_batch(model_input)
            pooled.append(np.asarray(from_pass))
        if thumbnails:
            for i, image, cam in zip(indices, pixels.astype(np.uint8), cams):
                side = image.shape[0]
                small = Image.fromarray(image).resize((THUMBNAIL, THUMBNAIL))
                heat = None if cam is None else overlay(image, heat_map(cam, side, side))
                result.thumbnails[i] = (data_uri(small), None if heat is None else
                                        data_uri(heat.resize((THUMBNAIL, THUMBNAIL))))
    result.records = classifier.label(files, batch_size, threshold, progress=progress,
                                      reject=reject, on_batch=on_batch)
    result.features = np.concatenate(pooled) if pooled else None
    return result


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
            confidence = "" if r["confidence"] is None else f"{r['confidence']:.4f}"
            lines.append(f"{name:<{width}}  {r['label']:<7}  {r['p_pg']:.4f}  {confidence:<6}"
                         f"      {ood}")
    return "\n".join(lines)


def summary(records: list[dict], review: str = "") -> str:
    """The counts per label, and what to do about UNKNOWN images (look at them: on the review
    page, where one is being written)."""
    counts = {name: sum(r["label"] == name for r in records)
              for name in (*CLASS_NAMES, UNKNOWN, "ERROR")}
    line = f"{len(records)} images: " + ", ".join(f"{v} {k}" for k, v in counts.items())
    if counts[UNKNOWN]:
        where = f"on {Path(review) / REVIEW_PAGE}" if review else "(--review FOLDER)"
        line += (f"\nUNKNOWN: {counts[UNKNOWN]} images unlike the model's training crops "
                 f"(ood_score > 1), so no class is given. Look at them {where}: if they are "
                 "crystals, label them and train on them; if not, they do not belong here.")
    return line


def plot_embedding_map(rows: list[dict], path: Path):
    """The 2-D map: one point per image, coloured by k-means cluster, labelled by file name."""
    from gacrystal.pictures import pyplot
    plt = pyplot()
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


def draw_embedding_map(records: list[dict], features: np.ndarray, out_dir: Path, clusters: int,
                       seed=42) -> list[dict]:
    """PCA of the readable images' pooled features to 2-D, k-means clusters, a labelled scatter
    plot (embedding_map.png) and a CSV (embedding_map.csv)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
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
