"""Synthetic in-situ microscope images laid out exactly like the Kaggle dataset (GAsynth.py).

    generate_dataset("images/synthetic", cex_count=600, pg_count=600)

Output: OUT/archive/cropped/cropped/cex/CEX (n).png and OUT/archive/cropped/cropped/pg/PG (n).png,
8-bit grey images stored as RGB, as in the real download (see README, "Synthetic data").

What the real crops look like (../shared/reference/ and its real/ folder) and how it is drawn:
- CEX: 151 x 151 crops *covered* by overlapping rods of very different widths, most of them broad
  (15-45 px), blurred and dim, with lengthwise striations, grainy surfaces and bright edges; few
  sharp thin needles; little empty background; a histogram with a long bright tail -> `rod_field`:
  rods at three focus depths, many lying near one direction, in one of CEX_REGIMES.
- PG: crops of 130-230 px a side, often not square, mostly filled by one agglomerate on the CEX
  rod field: either a large, nearly saturated plate whose rim is a band of dark pits and granules
  with a granular outline, or a dim, mottled mosaic of bright granules; rods in front of and
  behind it -> `agglomerate` on `rod_field`, in one of PG_REGIMES.
- Both: grey levels drawn from the real ranges (CEX mean 70-125, std 30-65; PG mean 100-140,
  std 35-77), so that brightness alone does not give the class away.
- PG files come in groups of consecutive numbers holding one crop rotated by multiples of 90
  degrees and/or mirrored, pixel for pixel.

How close this comes to real crops is measured by gacrystal.realism (GAsynth.py --compare DIR).
The same primitives draw whole probe frames (gacrystal.frames).

Each crop is drawn from its own random stream, seeded by (seed, class, crop number): the same seed
gives the same files whatever the counts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from gacrystal.cli import progress_bar
from gacrystal.images import KAGGLE_SUBPATH, dihedral

CEX_GREY = {"mean": (70, 125), "std": (30, 65)}  # ranges measured on the real images
PG_GREY = {"mean": (100, 140), "std": (35, 77)}
PG_GROUP_SIZES = (4, 5, 6, 7, 8)  # consecutive files per PG crop; about 6 on average, as real
TRANSFORMS = 8  # the rotations/mirrors of the square (gacrystal.images.dihedral)
GENERATOR_VERSION = 2  # 2: rod fields and pitted/mottled agglomerates (issue 15); 1: thin needles
STAMP_FILE = "generator.json"  # written beside the images: which generator drew them


# ---- drawing primitives -----------------------------------------------------------------------
# Sizes are in pixels of the real images (a CEX crop is UNIT_SIDE px); drawing a smaller crop
# scales them by `unit`, as a lower-resolution picture of the same scene would.

UNIT_SIDE = 151

# Each crop is drawn in one of these looks, with these probabilities (what the real crops show).
CEX_REGIMES = {
    "dense": 0.5,    # the crop covered by broad, blurred, low-contrast rods; few sharp needles
    "mixed": 0.3,    # broad blurred rods with sharp thin needles in front
    "bundles": 0.2,  # parallel bundles of striated rods over a blurred field
}
PG_REGIMES = {
    "plate": 0.45,     # a large, nearly saturated agglomerate with a band of dark pits at its rim
    "mottled": 0.3,    # a dim, granular mosaic, rods in front of and behind it
    "occluded": 0.25,  # either look, partly hidden behind rods in front
}


def choose(rng, regimes: dict[str, float]) -> str:
    names = list(regimes)
    return names[rng.choice(len(names), p=list(regimes.values()))]


def smooth_noise(shape, rng, scale) -> np.ndarray:
    """Noise of unit spread with features about `scale` px wide: uneven light, haze, granules."""
    noise = gaussian_filter(rng.normal(size=shape).astype(np.float32), scale)
    return noise / (noise.std() + 1e-6)


def smooth_profile(rng, length: int, scale: float) -> np.ndarray:
    """1-D noise of unit spread with features about `scale` samples wide."""
    profile = gaussian_filter1d(rng.normal(size=max(length, 2)).astype(np.float32), scale)
    return profile / (profile.std() + 1e-6)


def screen(base, layer) -> np.ndarray:
    """Blends a bright layer over base the way light adds up, without exceeding 1."""
    return 1.0 - (1.0 - base) * (1.0 - np.clip(layer, 0.0, 1.0))


def draw_rod(canvas, rng, center, angle, length, width, brightness, striation=0.0, edge=0.0):
    """Adds one rod with soft sides: brightness that varies along it, lengthwise striations
    (brightness that varies across it) and, on broad rods, bright edges."""
    direction = np.array([np.cos(angle), np.sin(angle)], np.float32)
    reach = np.abs(direction) * length / 2 + np.abs(direction[::-1]) * width / 2 + 2
    # Only the rod's bounding box is drawn: most of the canvas is far from any one rod.
    x_lo, y_lo = np.maximum(np.floor(center - reach), 0).astype(int)
    x_hi, y_hi = np.minimum(np.ceil(center + reach) + 1, canvas.shape[::-1]).astype(int)
    if x_lo >= x_hi or y_lo >= y_hi:
        return
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float32)
    u = (xs - center[0]) * direction[0] + (ys - center[1]) * direction[1]  # along the rod
    v = (ys - center[1]) * direction[0] - (xs - center[0]) * direction[1]  # across it
    body = (np.clip((width / 2 + 0.7 - np.abs(v)) / 1.4, 0, 1)
            * np.clip((length / 2 + 0.7 - np.abs(u)) / 1.4, 0, 1))
    half = int(width / 2) + 3
    stripes = smooth_profile(rng, 2 * half + 1, rng.uniform(0.5, 1.2))
    along = smooth_profile(rng, int(length) + 3, length / 6)
    shade = (1 + rng.uniform(-0.3, 0.3) * u / max(length, 1)
             + 0.12 * np.interp(u + length / 2 + 1, np.arange(len(along)), along))
    value = shade * (1 + striation * np.interp(v + half, np.arange(2 * half + 1), stripes))
    if edge:
        value = value + edge * np.exp(-((width / 2 - np.abs(v)) / 1.2) ** 2)
    box = canvas[y_lo:y_hi, x_lo:x_hi]
    np.maximum(box, body * brightness * np.clip(value, 0, 1.6), out=box)


def draw_rods(shape, rng, count, length, width, brightness, unit=1.0, striation=(0.0, 0.0),
              edge=(0.0, 0.0), flow=None, bundle_chance=0.0) -> np.ndarray:
    """A layer of `count` rods (ranges in real-image px); with `flow`, most lie near that angle,
    as rods carried past the probe do; some come as bundles of near-parallel rods."""
    layer = np.zeros(shape, np.float32)
    height, width_px = shape
    drawn = 0
    while drawn < count:
        center = rng.uniform([-0.1 * width_px, -0.1 * height], [1.1 * width_px, 1.1 * height])
        angle = rng.uniform(0, np.pi) if flow is None or rng.random() < 0.3 else \
            flow + rng.normal(0, 0.35)
        rods = int(rng.integers(3, 9)) if rng.random() < bundle_chance else 1
        normal = np.array([-np.sin(angle), np.cos(angle)])
        rod_length = rng.uniform(*length) * unit
        spacing = rng.uniform(*width) * unit
        for i in range(rods):
            offset = normal * (i - rods / 2) * spacing * rng.uniform(0.7, 1.1) if rods > 1 else 0.0
            draw_rod(layer, rng, center + offset, angle + rng.normal(0, 0.02) * (rods > 1),
                     rod_length * rng.uniform(0.7, 1.1), rng.uniform(*width) * unit,
                     rng.uniform(*brightness), rng.uniform(*striation), rng.uniform(*edge))
        drawn += rods
    return layer


def rod_field(shape, rng, unit=1.0, regime: str | None = None) -> np.ndarray:
    """The CEX slurry at the real images' scale, values in [0, 1], any shape (a crop or a whole
    probe frame): overlapping rods at three focus depths on a dark, uneven background."""
    regime = regime or choose(rng, CEX_REGIMES)
    crops = shape[0] * shape[1] / (UNIT_SIDE * unit) ** 2  # rod counts below are per CEX crop

    def count(low, high):
        return int(round(rng.uniform(low, high) * crops))

    far_count, mid_count, sharp_count = {"dense": ((10, 18), (6, 12), (0, 2)),
                                         "mixed": ((6, 12), (4, 8), (2, 6)),
                                         "bundles": ((6, 10), (2, 5), (0, 3))}[regime]
    flow = rng.uniform(0, np.pi) if rng.random() < 0.6 else None
    canvas = 0.16 + 0.06 * smooth_noise(shape, rng, max(shape) / 4)
    far = draw_rods(shape, rng, count(*far_count), (80, 320), (15, 45), (0.2, 0.5), unit,
                    striation=(0.0, 0.3), flow=flow)
    canvas = screen(canvas, gaussian_filter(far, rng.uniform(3.0, 6.0) * unit))
    mid = draw_rods(shape, rng, count(*mid_count), (60, 260), (5, 24), (0.3, 0.9), unit,
                    striation=(0.2, 0.7), edge=(0.0, 0.4), flow=flow)
    if regime == "bundles":
        mid = np.maximum(mid, draw_rods(shape, rng, count(4, 10), (80, 260), (3, 10),
                                        (0.35, 0.75), unit, striation=(0.2, 0.6),
                                        edge=(0.0, 0.3), flow=flow, bundle_chance=1.0))
    # Rods are not smooth bars: their surfaces are grainy, which survives the blur as mottling.
    mid = mid * (1 + rng.uniform(0.1, 0.5) * smooth_noise(shape, rng, 1.5 * unit))
    canvas = screen(canvas, gaussian_filter(mid, rng.uniform(1.5, 3.5) * unit))
    sharp = draw_rods(shape, rng, count(*sharp_count), (40, 240), (1.5, 5), (0.35, 0.85), unit,
                      flow=flow, bundle_chance=0.2)
    canvas = screen(canvas, gaussian_filter(sharp, rng.uniform(0.5, 1.0) * unit))
    # Most of the slurry is dim and a few rods catch the light: real CEX crops have a long
    # bright tail in their histograms (median below the mean), which a power above 1 gives.
    return np.clip(canvas, 0, 1) ** rng.uniform(1.4, 2.4)


def agglomerate(shape, rng, center, radius, unit=1.0, regime: str | None = None):
    """One PG agglomerate centred at center (x, y) with mean radius `radius` px.

    plate: nearly saturated, smoothly shaded, its rim a band of dark pits and granules with a
    granular, ragged outline; mottled: a dimmer, irregular mosaic of bright granules and dark gaps.

    Returns:
        (layer, alpha), both float32 of `shape` in [0, 1]: composite as
        canvas * (1 - alpha) + layer * alpha.
    """
    regime = regime or ("plate" if rng.random() < 0.6 else "mottled")
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    stretch, tilt = rng.uniform(0.7, 1.0), rng.uniform(0, np.pi)
    u = (xs - center[0]) * np.cos(tilt) + (ys - center[1]) * np.sin(tilt)
    v = ((ys - center[1]) * np.cos(tilt) - (xs - center[0]) * np.sin(tilt)) / stretch
    distance, theta = np.hypot(u, v), np.arctan2(v, u)
    lumpiness = 0.10 if regime == "plate" else 0.22
    outline = np.ones_like(theta)
    for k in range(2, 6):  # the overall shape: round to lumpy
        outline += rng.normal(0, lumpiness / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    granules = smooth_noise(shape, rng, 1.6 * unit)  # grains a few px wide
    ragged = (smooth_noise(shape, rng, radius / 6) * rng.uniform(0.04, 0.10) * radius
              + granules * rng.uniform(1.5, 3.5) * unit)
    inside = radius * outline - distance + ragged  # > 0 inside, in px
    alpha = np.clip(inside / (1.5 * unit) + 0.5, 0.0, 1.0)
    if regime == "plate":
        rim_width = radius * rng.uniform(0.15, 0.35)
        rim = np.clip(1.0 - inside / rim_width, 0.0, 1.0)  # 1 at the edge, 0 deep inside
        pits = np.clip((smooth_noise(shape, rng, 1.8 * unit) - 1.4 + 2.2 * rim) / 0.4, 0, 1)
        layer = (rng.uniform(0.93, 1.0) + 0.04 * smooth_noise(shape, rng, radius / 2)
                 - pits * np.clip(2 * rim, 0, 1) * rng.uniform(0.55, 0.8)
                 - 0.03 * np.abs(granules))
    else:
        mosaic = np.clip(granules, -1.0, 2.5) * rng.uniform(0.1, 0.16)  # bright grains, dark gaps
        layer = rng.uniform(0.5, 0.7) + 0.1 * smooth_noise(shape, rng, radius / 3) + mosaic
    return np.clip(layer, 0, 1).astype(np.float32), alpha.astype(np.float32)


def match_grey_levels(canvas, rng, grey) -> np.ndarray:
    """Maps the drawing to a mean and spread drawn from the real class's ranges; 8-bit, clipped."""
    target_mean, target_std = rng.uniform(*grey["mean"]), rng.uniform(*grey["std"])
    scaled = (canvas - canvas.mean()) / (canvas.std() + 1e-6) * target_std + target_mean
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def finish(canvas, rng, grey, unit=1.0) -> np.ndarray:
    """Optics and sensor: a slight blur, then grain, then the class's grey levels."""
    canvas = gaussian_filter(canvas, rng.uniform(0.5, 1.1) * max(unit, 0.5))
    grain = rng.normal(0, rng.uniform(0.01, 0.03), canvas.shape).astype(np.float32)
    canvas = canvas + gaussian_filter(grain, 0.6) * 1.5  # sensor noise is slightly correlated
    return match_grey_levels(canvas, rng, grey)


# ---- the two classes --------------------------------------------------------------------------

def draw_cex(rng, size, unit=None) -> np.ndarray:
    """A CEX crop: a window on the rod field."""
    unit = size / UNIT_SIDE if unit is None else unit
    return finish(rod_field((size, size), rng, unit), rng, CEX_GREY, unit)


def draw_pg(rng, size_range, unit=1.0) -> np.ndarray:
    """A PG crop: one agglomerate filling most of the crop, on the rod field, in one of PG_REGIMES."""
    width = int(rng.integers(size_range[0], size_range[1] + 1))
    aspect = rng.uniform(0.8, 1.25) if rng.random() < 0.7 else 1.0  # often not square
    height = int(np.clip(round(width * aspect), *size_range))
    shape = (height, width)
    regime = choose(rng, PG_REGIMES)
    look = regime if regime != "occluded" else ("plate" if rng.random() < 0.5 else "mottled")
    canvas = rod_field(shape, rng, unit) * rng.uniform(0.35, 0.75)  # the slurry, darker
    center = np.array([width, height]) / 2 + rng.normal(0, 0.04, 2) * np.array([width, height])
    radius = rng.uniform(0.32, 0.45) * min(shape)
    layer, alpha = agglomerate(shape, rng, center, radius, unit, look)
    canvas = canvas * (1 - alpha) + layer * alpha
    if regime == "occluded" or (look == "mottled" and rng.random() < 0.5):
        front = draw_rods(shape, rng, int(rng.integers(1, 5)), (80, 260), (3, 16), (0.3, 0.7),
                          unit, striation=(0.1, 0.5), edge=(0.0, 0.3))
        # Rods in front are out of the focal plane and let the agglomerate show through.
        canvas = screen(canvas, gaussian_filter(front, rng.uniform(0.8, 2.0) * unit)
                        * rng.uniform(0.5, 0.9))
    return finish(canvas, rng, PG_GREY, unit)


def pg_groups(rng_for, count):
    """Yields (group number, dihedral transform indices) until count files are covered; the first
    is the original."""
    written, group = 0, 0
    while written < count:
        rng = rng_for(group)
        size = min(int(rng.choice(PG_GROUP_SIZES)), count - written)
        order = [0] + list(1 + rng.permutation(TRANSFORMS - 1))
        yield group, [int(i) for i in order[:size]]
        written += size
        group += 1


# ---- writing the dataset ----------------------------------------------------------------------

def save_grey_as_rgb(pixels: np.ndarray, path: Path):
    """Saves grey pixels as an RGB PNG with R = G = B, as the real files are stored."""
    Image.fromarray(np.repeat(pixels[:, :, None], 3, axis=2)).save(path)


def class_rng(seed: int, class_id: int, number: int) -> np.random.Generator:
    return np.random.default_rng([seed, class_id, number])


def generate_dataset(out, cex_count, pg_count, cex_size=151, pg_size_range=(130, 230), seed=42,
                     progress=True) -> dict[str, list[Path]]:
    """Writes cex_count CEX and pg_count PG images into the Kaggle layout below out.

    Returns:
        {"CEX": [paths], "PG": [paths]} in file-number order.
    """
    folders = {"CEX": Path(out, KAGGLE_SUBPATH, "cex"), "PG": Path(out, KAGGLE_SUBPATH, "pg")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    written = {"CEX": [], "PG": []}
    bar = progress_bar(cex_count + pg_count, "synthetic images",
                       enabled=progress and cex_count + pg_count >= 200)
    unit = cex_size / UNIT_SIDE  # a smaller crop pictures the same scene at a lower resolution
    for number in range(1, cex_count + 1):
        path = folders["CEX"] / f"CEX ({number}).png"
        save_grey_as_rgb(draw_cex(class_rng(seed, 0, number), cex_size, unit), path)
        written["CEX"].append(path)
        bar.update()
    for group, transforms in pg_groups(lambda g: class_rng(seed, 1, g), pg_count):
        crop = draw_pg(class_rng(seed, 1, group), pg_size_range, unit)
        for transform in transforms:
            path = folders["PG"] / f"PG ({len(written['PG']) + 1}).png"
            save_grey_as_rgb(dihedral(crop, transform), path)
            written["PG"].append(path)
            bar.update()
    bar.close()
    stamp = {"generator_version": GENERATOR_VERSION, "seed": seed, "cex_count": cex_count,
             "pg_count": pg_count}
    Path(out, STAMP_FILE).write_text(json.dumps(stamp, indent=2))
    return written


def drawn_by_older_generator(out) -> bool:
    """Whether the images in out were drawn by an earlier version of this generator (they lack
    the stamp, or it names an older version)."""
    stamp = Path(out, STAMP_FILE)
    version = json.loads(stamp.read_text()).get("generator_version", 1) if stamp.is_file() else 1
    return version < GENERATOR_VERSION


def remove_previous(out):
    """With --overwrite: removes the numbered images an earlier run wrote, so none is left stale."""
    for class_folder, prefix in (("cex", "CEX"), ("pg", "PG")):
        for path in Path(out, KAGGLE_SUBPATH, class_folder).glob(f"{prefix} (*).png"):
            path.unlink()
