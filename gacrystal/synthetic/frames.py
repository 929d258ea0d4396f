"""Synthetic probe frames with ground truth: a spiking experiment (GAsynth.py --frames N).

    generate_frames("images/frames-synthetic", count=60, spike_frame=31)

A whole field of view of the in-situ probe, drawn with the primitives the crops use
(gacrystal.synthetic.crops): the CEX rod field over the whole frame; from `spike_frame` on, PG
agglomerates, more of them every `step_every` frames, as when PG is added step by step to a CEX
slurry (the Kaggle Raw pg/ frames were taken that way); in every frame a few distractors that are
neither class: gas bubbles (a dark disc in a bright ring) and out-of-focus blobs; and CEX
starbursts (rods radiating from one bright point; about one in a 1280 x 960 frame), which a
particle finder takes for a blob and a classifier may take for PG. Each frame is a new snapshot
of a stirred suspension, so particles do not persist from frame to frame.

Output: OUT/frame (n).png (8-bit grey stored as RGB, with its time in the EXIF DateTime tag and as
the file's modification time) and OUT/truth.csv: one row per object (pg, bubble, out_of_focus,
starburst; a frame without any has one row with an empty kind): frame, time, elapsed_s, spike_frame,
pg_in_frame, kind, x, y, w, h (the box, in px), area_px (where known: the particle's own area).
Nothing depends on the frame size: the real probe's is not known here.

Each frame is drawn from its own random stream, seeded by (seed, frame number): the same seed gives
the same frames whatever the count.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from gacrystal.cli import progress_bar
from gacrystal.files import write_csv
from gacrystal.images import EXIF_DATETIME
from gacrystal.synthetic.crops import finish, pg_look
from gacrystal.synthetic.drawing import (agglomerate, composite, needles_in_front, rod_field,
                                         rods_in_front, screen, starburst)

FRAME_GREY = {"mean": (85, 105), "std": (40, 50)}  # a whole frame: mostly slurry, a few bright spots
PG_RADIUS = (40, 85)  # px: real PG crops (130-230 px) are 64-90% filled by one agglomerate
PG_FIRST_STEP = 4  # PG particles in view after the first addition (about; each frame varies)
PG_PER_STEP = 3  # and more with each later addition
PG_MOST = 14  # a frame holds at most this many agglomerates
DISTRACTORS = (0, 3)  # bubbles and out-of-focus blobs per frame
STARBURSTS_PER_MEGAPIXEL = 0.8  # CEX rods radiating from one bright point (not PG: a hard
# case), on average; about one in a 1280 x 960 frame
START_TIME = dt.datetime(2026, 1, 12, 9, 0, 0)  # the synthetic experiment's first frame
TRUTH_FILE = "truth.csv"
TRUTH_COLUMNS = ["frame", "time", "elapsed_s", "spike_frame", "pg_in_frame", "kind", "x", "y",
                 "w", "h", "area_px"]


def frame_name(number: int) -> str:
    return f"frame ({number}).png"


def pg_in_view(number: int, spike_frame: int, step_every: int, rng, first: int = PG_FIRST_STEP,
               per_step: int = PG_PER_STEP, jitter: int = 1) -> int:
    """How many PG particles frame `number` shows: none before the spike, then `first`, and
    `per_step` more with each addition (one every `step_every` frames), give or take `jitter`
    (a stirred suspension; at least one from the spike on)."""
    if spike_frame < 1 or number < spike_frame:
        return 0
    level = first + per_step * ((number - spike_frame) // max(step_every, 1))
    return int(np.clip(level + rng.integers(-jitter, jitter + 1), 1, PG_MOST))


def place_apart(rng, radii, width, height) -> list[tuple[int, np.ndarray]]:
    """(index, centre (x, y)) of the objects with these radii that could be placed wholly inside
    the frame without overlapping; a crowded frame gets fewer objects, not overlapping ones."""
    placed = []
    for index, radius in enumerate(radii):
        margin = 1.3 * radius
        for _ in range(200):
            centre = rng.uniform([margin, margin], [width - margin, height - margin])
            if all(np.hypot(*(centre - c)) > 2.4 * (radius + radii[i]) / 2 for i, c in placed):
                placed.append((index, centre))
                break
    return placed


def patch_box(centre, reach, width, height) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the square of half-side `reach` around centre, clipped to the frame."""
    x0, y0 = np.maximum(np.floor(centre - reach), 0).astype(int)
    x1 = int(min(np.ceil(centre[0] + reach), width))
    y1 = int(min(np.ceil(centre[1] + reach), height))
    return x0, y0, x1, y1


def add_agglomerate(canvas, rng, centre, radius) -> tuple[int, int, int, int, int]:
    """Draws one PG agglomerate (in one of the PG_REGIMES' looks of gacrystal.synthetic.crops) into
    canvas; returns its box x, y, w, h (where its outline reaches) and its area in px."""
    height, width = canvas.shape
    x0, y0, x1, y1 = patch_box(centre, 1.6 * radius, width, height)
    _, look = pg_look(rng)
    patch = (y1 - y0, x1 - x0)
    layer, alpha = agglomerate(patch, rng, centre - [x0, y0], radius, 1.0, look)
    canvas[y0:y1, x0:x1] = composite(canvas[y0:y1, x0:x1], layer, alpha)
    if look == "coarse":  # bright needles crossing in front of it
        canvas[y0:y1, x0:x1] = screen(canvas[y0:y1, x0:x1], needles_in_front(patch, rng))
    ys, xs = np.nonzero(alpha > 0.5)
    return (int(x0 + xs.min()), int(y0 + ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1),
            len(xs))


def add_starburst(canvas, rng, centre) -> tuple[int, int, int, int]:
    """CEX rods radiating from one bright point; returns the box the rods reach."""
    height, width = canvas.shape
    x0, y0, x1, y1 = patch_box(centre, 130, width, height)
    layer = starburst((y1 - y0, x1 - x0), rng, centre - [x0, y0])
    canvas[y0:y1, x0:x1] = screen(canvas[y0:y1, x0:x1], layer)
    ys, xs = np.nonzero(layer > 0.2)
    return int(x0 + xs.min()), int(y0 + ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)


def add_bubble(canvas, rng, centre, radius):
    """A gas bubble: darker inside, a thin bright ring, a small highlight; sharp, round."""
    height, width = canvas.shape
    x0, y0, x1, y1 = patch_box(centre, radius + 4, width, height)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    distance = np.hypot(xs - centre[0], ys - centre[1])
    inside = np.clip(radius - distance + 0.5, 0, 1)
    ring = np.exp(-((distance - radius) / rng.uniform(1.2, 2.5)) ** 2)
    spot = np.exp(-(np.hypot(xs - centre[0] + 0.35 * radius, ys - centre[1] + 0.35 * radius)
                    / (0.12 * radius)) ** 2)
    box = canvas[y0:y1, x0:x1]
    box = box * (1 - 0.6 * inside) + 0.08 * inside
    canvas[y0:y1, x0:x1] = screen(box, 0.85 * ring + 0.9 * spot)


def add_out_of_focus(canvas, rng, centre, radius):
    """A particle near the lens, far from the focal plane: a smooth, strongly blurred grey patch
    that hides what lies behind it (the usual thin-lens picture: a blurred silhouette)."""
    height, width = canvas.shape
    reach = 2.2 * radius
    x0, y0, x1, y1 = patch_box(centre, reach, width, height)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    disc = (np.hypot(xs - centre[0], (ys - centre[1]) / rng.uniform(0.7, 1.0)) < radius)
    alpha = gaussian_filter(disc.astype(np.float32), radius / rng.uniform(2.5, 4.0))
    alpha *= rng.uniform(0.75, 0.95)
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + rng.uniform(0.5, 0.9) * alpha


def draw_frame(rng, width: int, height: int, pg_count: int) -> tuple[np.ndarray, list[dict]]:
    """One frame: the rod field, `pg_count` agglomerates, a few starbursts and distractors, optics.

    Returns:
        (grey uint8 pixels of shape (height, width), the objects: {"kind", "x", "y", "w", "h"}).
    """
    canvas = rod_field((height, width), rng)
    distractors = int(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1))
    starbursts = int(rng.poisson(STARBURSTS_PER_MEGAPIXEL * width * height / 1e6))
    radii = (list(rng.uniform(*PG_RADIUS, pg_count)) + list(rng.uniform(20, 60, distractors))
             + [60.0] * starbursts)
    objects = []
    for i, centre in place_apart(rng, radii, width, height):
        radius = radii[i]
        if i < pg_count:
            x, y, w, h, area = add_agglomerate(canvas, rng, centre, radius)
            objects.append({"kind": "pg", "x": x, "y": y, "w": w, "h": h, "area_px": area})
            continue
        if i >= pg_count + distractors:
            x, y, w, h = add_starburst(canvas, rng, centre)
            objects.append({"kind": "starburst", "x": x, "y": y, "w": w, "h": h})
            continue
        kind = "bubble" if rng.random() < 0.5 else "out_of_focus"
        (add_bubble if kind == "bubble" else add_out_of_focus)(canvas, rng, centre, radius)
        side = int(round(2 * radius))
        objects.append({"kind": kind, "x": int(centre[0] - radius), "y": int(centre[1] - radius),
                        "w": side, "h": side, "area_px": round(np.pi * radius ** 2)})
    # A few rods in front of everything, out of the focal plane (some cross agglomerates).
    crops = width * height / 151 ** 2
    canvas = screen(canvas, rods_in_front((height, width), rng,
                                          int(rng.uniform(0.1, 0.3) * crops)))
    return finish(canvas, rng, FRAME_GREY), objects


def save_frame(pixels: np.ndarray, path: Path, when: dt.datetime):
    """An RGB PNG (R = G = B) whose EXIF DateTime and modification time are `when`."""
    exif = Image.Exif()
    exif[EXIF_DATETIME] = when.strftime("%Y:%m:%d %H:%M:%S")
    # compress_level 1: a third of the time of the default level, files about 10% larger
    Image.fromarray(np.repeat(pixels[:, :, None], 3, axis=2)).save(path, exif=exif,
                                                                   compress_level=1)
    os.utime(path, (when.timestamp(), when.timestamp()))


def write_frame(out: Path, number: int, spike_frame: int, width: int, height: int,
                interval: float, step_every: int, seed: int, pg_first: int = PG_FIRST_STEP,
                pg_per_step: int = PG_PER_STEP, draw=None) -> list[dict]:
    """Draws and saves frame `number`; returns its truth.csv rows.

    Args:
        draw: (rng, width, height, pg_count) -> (grey uint8 pixels, objects): `draw_frame`
            (synthetic; the PG count varies by one from frame to frame, as in a stirred
            suspension) or a gacrystal.synthetic.mosaic.MosaicDrawer (real crops; the count exactly
            as scheduled, a controlled check).
    """
    rng = np.random.default_rng([seed, 2, number])
    jitter = 1 if draw is None else 0
    pg_count = pg_in_view(number, spike_frame, step_every, rng, pg_first, pg_per_step, jitter)
    pixels, objects = (draw or draw_frame)(rng, width, height, pg_count)
    pg_count = sum(o["kind"] == "pg" for o in objects)  # those that found room
    elapsed = (number - 1) * interval
    when = START_TIME + dt.timedelta(seconds=elapsed)
    save_frame(pixels, out / frame_name(number), when)
    common = {"frame": frame_name(number), "time": when.isoformat(), "elapsed_s": elapsed,
              "spike_frame": spike_frame, "pg_in_frame": pg_count}
    empty = {"kind": "", "x": None, "y": None, "w": None, "h": None, "area_px": None}
    return [{**common, **empty, **o} for o in objects] or [{**common, **empty}]


def generate_frames(out, count: int, spike_frame: int, width: int = 1280, height: int = 960,
                    interval: float = 10.0, step_every: int = 10, seed: int = 42,
                    progress: bool = True, workers: int | None = None,
                    pg_first: int = PG_FIRST_STEP, pg_per_step: int = PG_PER_STEP,
                    draw=None) -> list[dict]:
    """Writes `count` frames and truth.csv into out, on `workers` processes (all cores: None).

    Args:
        spike_frame: the first frame with PG in view (1-based); 0 or more than count: pure CEX.
        interval: seconds between frames.
        step_every: frames between one PG addition and the next.
        pg_first, pg_per_step: PG particles in view at the spike, and added with each addition.
        draw: how a frame is drawn (see write_frame); synthetic when None.

    Returns:
        The rows of truth.csv.
    """
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    draw_one = partial(write_frame, out, spike_frame=spike_frame, width=width, height=height,
                       interval=interval, step_every=step_every, seed=seed, pg_first=pg_first,
                       pg_per_step=pg_per_step, draw=draw)
    workers = min(workers or os.cpu_count() or 1, count)
    bar = progress_bar(count, "frames", unit="frame", enabled=progress and count >= 10)
    rows = []
    if workers > 1:  # each frame has its own random stream: the same frames on any core count
        with ProcessPoolExecutor(workers) as pool:
            for frame_rows in pool.map(draw_one, range(1, count + 1)):
                rows += frame_rows
                bar.update()
    else:
        for number in range(1, count + 1):
            rows += draw_one(number)
            bar.update()
    bar.close()
    write_csv(rows, out / TRUTH_FILE, TRUTH_COLUMNS)
    return rows


def read_truth(path) -> dict[str, dict]:
    """truth.csv by frame name: {"time", "elapsed_s", "spike_frame", "pg": [boxes],
    "pg_area": [px or None, one per PG box], "distractors": [boxes]}, each box (x, y, w, h)."""
    import csv
    frames = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            entry = frames.setdefault(row["frame"], {
                "time": row["time"], "elapsed_s": float(row["elapsed_s"]),
                "spike_frame": int(row["spike_frame"]), "pg": [], "pg_area": [],
                "distractors": []})
            if row["kind"]:
                box = tuple(int(row[k]) for k in ("x", "y", "w", "h"))
                entry["pg" if row["kind"] == "pg" else "distractors"].append(box)
                if row["kind"] == "pg":
                    entry["pg_area"].append(float(row["area_px"]) if row.get("area_px") else None)
    return frames
