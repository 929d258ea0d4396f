"""Pictures for people: Grad-CAM and its overlays, plots drawn off-screen, and the pieces of the
self-contained HTML pages (report.html, the review page, monitor.html).

- Grad-CAM (Selvaraju et al., 2017): which regions of an image drove the model's P(PG). The last
  convolutional stage's feature maps, weighted by the average gradient of P(PG) with respect to
  each map, summed, and kept where positive. The map has the stage's resolution (7 x 7 for 224 px
  ResNets) and is scaled up to the image's own size.
- `pyplot()`: matplotlib that draws into files only (no window; servers and CI).
- `REPORT_STYLE`, `data_uri`, `html_table`: a page's style, its images embedded (it opens offline
  anywhere), its tables.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

OVERLAY_ALPHA = 0.45  # weight of the heat map over the image


def gradcam_model(model):
    """A model with outputs [last convolutional stage's maps, P(PG)]: the input of the head's
    global average pooling, which is in the outer graph for nested and flat backbones alike."""
    import keras
    from gacrystal.model import pooling_layer
    return keras.Model(model.inputs, [pooling_layer(model).input, model.output])


def gradcam(grad_model, pixels: np.ndarray) -> np.ndarray:
    """Grad-CAM maps of P(PG) for a batch of model inputs: (n, h, w), each scaled to 0..1."""
    import tensorflow as tf
    x = tf.convert_to_tensor(np.asarray(pixels, np.float32))
    with tf.GradientTape() as tape:
        maps, p_pg = grad_model(x, training=False)
        target = tf.reduce_sum(p_pg[:, 0])  # each image's P(PG) depends on its own maps only
    grads = tape.gradient(target, maps)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1)).numpy()
    peaks = cams.max(axis=(1, 2), keepdims=True)
    return np.divide(cams, peaks, out=np.zeros_like(cams), where=peaks > 0)


def heat_map(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """A Grad-CAM map scaled up (bilinear) to width x height, values 0..1."""
    image = Image.fromarray(np.asarray(cam, np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).clip(0, 1)


def overlay(rgb: np.ndarray, heat: np.ndarray) -> Image.Image:
    """The image with the heat map (jet colours) blended over it, at the image's size."""
    from matplotlib import colormaps
    colours = colormaps["jet"](heat)[..., :3] * 255
    blended = (1 - OVERLAY_ALPHA) * np.asarray(rgb, np.float32) + OVERLAY_ALPHA * colours
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def gradcam_overlay(path, cam: np.ndarray) -> tuple[np.ndarray, Image.Image]:
    """The image at `path` at its own size, and the Grad-CAM map laid over it (the one recipe for
    overlays: GAinfer's --explain and the run report's gallery)."""
    from gacrystal.images import read_rgb
    original = read_rgb(path)
    return original, overlay(original, heat_map(cam, original.shape[1], original.shape[0]))


def write_overlays(cams, files: list, out_dir: Path) -> list[Path]:
    """Writes OUT_DIR/<name>_gradcam.png for each of a batch of images (cams: their Grad-CAM
    maps, files: where each came from); returns the paths written."""
    from gacrystal.files import atomic_path
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, cam in zip(files, cams):
        target = out_dir / f"{Path(path).stem}_gradcam.png"
        with atomic_path(target) as temporary:
            gradcam_overlay(path, cam)[1].save(temporary)
        written.append(target)
    return written


# --- plots and pages ---

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no window, works on servers and in CI
    import matplotlib.pyplot as plt
    return plt


REPORT_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:right}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.6em;overflow-x:auto}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:6px;
font-size:.8em;width:240px}.card img{width:115px;height:115px;image-rendering:pixelated}"""


def data_uri(image) -> str:
    """A PNG file's path, or a PIL image, as a data: URI to embed in HTML."""
    import base64
    import io
    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
    else:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def html_table(rows: list[dict], columns: list[str]) -> str:
    from html import escape
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f"<td>{row[c]:.4f}</td>" if isinstance(row[c], float) else f"<td>{escape(str(row[c]))}</td>"
        for c in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
