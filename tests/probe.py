"""Stand-ins for the monitoring tests: a classifier that calls bright-middled crops PG, and
frames of needle-like texture with bright discs (the monitor's input without a network)."""
from pathlib import Path

import numpy as np
from PIL import Image

from gacrystal.synthetic import frames as synth_frames


class BrightnessClassifier:
    """Stands in for a model: a crop whose middle is bright is PG (an agglomerate fills the
    middle of a PG crop), else CEX; counts the crops it was asked about."""

    card = {"image_size": 32, "crop_size": 64}

    def __init__(self):
        self.crops = 0

    def label(self, crops, batch_size=32, threshold=0.5, reject=True):
        self.crops += len(crops)
        records = []
        for crop in crops:
            pixels = np.asarray(crop, np.float32)
            h, w = pixels.shape[:2]
            middle = pixels[h // 3:2 * h // 3, w // 3:2 * w // 3].mean() / 255
            p = float(np.clip((middle - 0.62) * 5 + 0.5, 0, 1))
            label = "PG" if p >= threshold else "CEX"
            records.append({"label": label, "p_pg": p, "confidence": max(p, 1 - p),
                            "ood_score": 0.2})
        return records

    def pad_short_batches_to(self, width: int):
        """As a Keras Classifier takes it (GAmonitor.py sets it for each experiment)."""


class StandIn(BrightnessClassifier):
    can_reject = True
    engine = "stand-in"  # what the scripts print as the model's engine


def save_grey(pixels, path):
    Image.fromarray(np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[:, :, None], 3, 2)).save(path)


def textured_frame(height=360, width=480, seed=0):
    """Needle-like texture: grey noise with thin bright lines, no blobs."""
    rng = np.random.default_rng(seed)
    frame = 60 + 12 * rng.normal(size=(height, width))
    for _ in range(30):
        x, y, angle = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0, np.pi)
        for t in np.linspace(-60, 60, 240):
            xi, yi = int(x + t * np.cos(angle)), int(y + t * np.sin(angle))
            if 0 <= xi < width and 0 <= yi < height:
                frame[yi, max(xi - 1, 0):xi + 2] = 170  # 3 px wide: a needle
    return frame


def add_disc(frame, cx, cy, radius, value=235.0, blur=0.0, rng=None):
    from scipy.ndimage import gaussian_filter
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    disc = (np.hypot(xs - cx, ys - cy) < radius).astype(np.float32)
    if blur:
        disc = gaussian_filter(disc, blur)
    grain = 0 if rng is None else 25 * rng.normal(size=frame.shape)  # granules: in focus
    return frame * (1 - disc) + (value + grain) * disc


def spiking_frames(folder: Path, count=4, spike=3, seed=5) -> dict:
    rows = synth_frames.generate_frames(folder, count, spike, width=480, height=360, seed=seed,
                                        progress=False, workers=1)
    return rows


def draw_bright_discs(rng, width, height, pg_count):
    """A needle field with `pg_count` bright granular discs: what the stand-in classifiers call
    PG, whatever the synthetic generator draws (gacrystal.synthetic.frames.write_frame's `draw`)."""
    frame = textured_frame(height, width, seed=int(rng.integers(1000)))
    objects = []
    for i in range(pg_count):
        cx, cy = 80 + i * 110, height // 2
        frame = add_disc(frame, cx, cy, 40, rng=rng)
        objects.append({"kind": "pg", "x": cx - 40, "y": cy - 40, "w": 80, "h": 80})
    return np.clip(frame, 0, 255).astype(np.uint8), objects


def disc_frames(folder: Path, count=5, spike=3) -> list[dict]:
    """Spiking frames of needles and bright discs (3 from the spike on), with EXIF times."""
    return synth_frames.generate_frames(folder, count, spike, width=480, height=360, seed=5,
                                        progress=False, workers=1, pg_first=3, pg_per_step=0,
                                        draw=draw_bright_discs)
