"""Synthetic in-situ microscope images laid out exactly like the Kaggle dataset (GAsynth.py).

    generate_dataset("images/synthetic", cex_count=600, pg_count=600)

Output: OUT/archive/cropped/cropped/cex/CEX (n).png and OUT/archive/cropped/cropped/pg/PG (n).png,
8-bit grey images stored as RGB, as in the real download (see README, "Synthetic data").

What the real images look like (../shared/reference/DATASET.md) and how each trait is made here:
- CEX: 151 x 151 crops filled with long, thin, bright needles and parallel bundles at random
  angles, many crossing, some out of focus -> needles drawn at three focus depths.
- PG: crops of 130-230 px a side, often not square, centred on one bright round or irregular
  agglomerate, either granular and "bubbly" or a smooth, nearly saturated fill with a ragged, darker
  rim, with out-of-focus needles behind -> a particle with a random Fourier outline on a needle
  background.
- Both: a darker, noisy, slightly blurred background; grey levels drawn from the real ranges
  (CEX mean 70-125, std 30-65; PG mean 100-140, std 35-77), so that brightness alone does not
  give the class away.
- PG files come in groups of consecutive numbers holding one crop rotated by multiples of 90
  degrees and/or mirrored, pixel for pixel.

Each crop is drawn from its own random stream, seeded by (seed, class, crop number): the same seed
gives the same files whatever the counts.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from gacrystal.cli import progress_bar
from gacrystal.images import KAGGLE_SUBPATH, dihedral

CEX_GREY = {"mean": (70, 125), "std": (30, 65)}  # ranges measured on the real images
PG_GREY = {"mean": (100, 140), "std": (35, 77)}
PG_GROUP_SIZES = (4, 5, 6, 7, 8)  # consecutive files per PG crop; about 6 on average, as real
TRANSFORMS = 8  # the rotations/mirrors of the square (gacrystal.images.dihedral)


# ---- drawing primitives -----------------------------------------------------------------------

def segment_distance(xs, ys, start, end) -> np.ndarray:
    """Distance of each pixel (xs, ys) from the segment start-end, both given as (x, y)."""
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    t = ((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))


def draw_needle(canvas, rng, center, angle, length, width, brightness):
    """Adds one bright rod with soft edges and brightness that varies along its length."""
    direction = np.array([np.cos(angle), np.sin(angle)])
    start, end = center - direction * length / 2, center + direction * length / 2
    # Only the rod's bounding box is drawn: most of the frame is far from any one needle.
    pad = width / 2 + 2
    x_lo, y_lo = np.maximum(np.floor(np.minimum(start, end) - pad), 0).astype(int)
    x_hi, y_hi = np.ceil(np.maximum(start, end) + pad).astype(int) + 1
    x_hi, y_hi = min(x_hi, canvas.shape[1]), min(y_hi, canvas.shape[0])
    if x_lo >= x_hi or y_lo >= y_hi:
        return
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float32)
    distance = segment_distance(xs, ys, start, end)
    profile = np.clip((width / 2 + 0.7 - distance) / 1.4, 0.0, 1.0)
    # A gradient along the rod: real needles catch the light unevenly.
    along = ((xs - center[0]) * direction[0] + (ys - center[1]) * direction[1]) / max(length, 1)
    shade = 1.0 + rng.uniform(-0.35, 0.35) * along
    box = canvas[y_lo:y_hi, x_lo:x_hi]
    np.maximum(box, profile * brightness * shade, out=box)


def draw_needles(shape, rng, count, length_range, width_range, brightness_range,
                 bundle_chance=0.25) -> np.ndarray:
    """A layer of needles at random angles; some come as bundles of near-parallel rods."""
    layer = np.zeros(shape, np.float32)
    height, width = shape
    drawn = 0
    while drawn < count:
        center = rng.uniform([-0.1 * width, -0.1 * height], [1.1 * width, 1.1 * height])
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(*length_range)
        rods = rng.integers(3, 7) if rng.random() < bundle_chance else 1
        normal = np.array([-np.sin(angle), np.cos(angle)])
        for _ in range(rods):
            offset = normal * rng.normal(0, 4.0) if rods > 1 else 0.0
            draw_needle(layer, rng, center + offset, angle + rng.normal(0, 0.03) * (rods > 1),
                        length * rng.uniform(0.7, 1.1), rng.uniform(*width_range),
                        rng.uniform(*brightness_range))
        drawn += rods
    return layer


def smooth_noise(shape, rng, scale) -> np.ndarray:
    """Low-frequency noise of unit spread: uneven illumination and out-of-focus haze."""
    noise = gaussian_filter(rng.normal(size=shape).astype(np.float32), scale)
    return noise / (noise.std() + 1e-6)


def screen(base, layer) -> np.ndarray:
    """Blends a bright layer over base the way light adds up, without exceeding 1."""
    return 1.0 - (1.0 - base) * (1.0 - np.clip(layer, 0.0, 1.0))


def background(shape, rng) -> np.ndarray:
    """A darker, uneven background with out-of-focus needles, the same for both classes."""
    canvas = 0.22 + 0.07 * smooth_noise(shape, rng, max(shape) / 6)
    far = draw_needles(shape, rng, rng.integers(6, 16), (60, 260), (3, 10), (0.15, 0.45))
    return screen(canvas, gaussian_filter(far, rng.uniform(3.0, 6.0)))


def match_grey_levels(canvas, rng, grey) -> np.ndarray:
    """Maps the drawing to a mean and spread drawn from the real class's ranges; 8-bit, clipped."""
    target_mean, target_std = rng.uniform(*grey["mean"]), rng.uniform(*grey["std"])
    scaled = (canvas - canvas.mean()) / (canvas.std() + 1e-6) * target_std + target_mean
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def finish(canvas, rng, grey) -> np.ndarray:
    """Optics and sensor: a slight blur, then grain, then the class's grey levels."""
    canvas = gaussian_filter(canvas, rng.uniform(0.6, 1.3))
    grain = rng.normal(0, rng.uniform(0.02, 0.05), canvas.shape).astype(np.float32)
    canvas = canvas + gaussian_filter(grain, 0.6) * 1.5  # sensor noise is slightly correlated
    return match_grey_levels(canvas, rng, grey)


# ---- the two classes --------------------------------------------------------------------------

def draw_cex(rng, size) -> np.ndarray:
    """A CEX crop: a frame filled with needles and bundles at three focus depths."""
    shape = (size, size)
    canvas = background(shape, rng)
    middle = draw_needles(shape, rng, rng.integers(10, 25), (50, 220), (2, 7), (0.25, 0.6))
    canvas = screen(canvas, gaussian_filter(middle, rng.uniform(1.5, 3.0)))
    sharp = draw_needles(shape, rng, rng.integers(8, 25), (40, 240), (1.5, 5), (0.35, 0.85),
                         bundle_chance=0.35)
    canvas = screen(canvas, gaussian_filter(sharp, rng.uniform(0.6, 1.2)))
    return finish(canvas, rng, CEX_GREY)


def particle_mask(shape, rng):
    """A soft mask of one round-to-irregular particle near the centre, and its ragged edge band."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width / 2 + rng.normal(0, width * 0.04)
    cy = height / 2 + rng.normal(0, height * 0.04)
    stretch, tilt = rng.uniform(0.65, 1.0), rng.uniform(0, np.pi)
    u = (xs - cx) * np.cos(tilt) + (ys - cy) * np.sin(tilt)
    v = (-(xs - cx) * np.sin(tilt) + (ys - cy) * np.cos(tilt)) / stretch
    radius, theta = np.hypot(u, v), np.arctan2(v, u)
    outline = np.ones_like(theta)
    for k in range(2, 6):  # the overall shape: round to lumpy
        outline += rng.normal(0, 0.10 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    mean_radius = rng.uniform(0.28, 0.42) * min(height, width)
    # A ragged edge at several scales: the boundary follows a 2-D noise field, not a formula.
    ragged = (smooth_noise(shape, rng, mean_radius / 6) * rng.uniform(0.06, 0.14)
              + smooth_noise(shape, rng, 1.5) * rng.uniform(0.02, 0.05))
    inside = mean_radius * (outline + ragged) - radius  # > 0 inside, in pixels
    mask = np.clip(inside / 2.0 + 0.5, 0.0, 1.0)
    rim_width = mean_radius * rng.uniform(0.06, 0.16) * (1 + 0.5 * smooth_noise(shape, rng, 4))
    rim = np.clip(1.0 - inside / np.maximum(rim_width, 1.0), 0.0, 1.0) * mask
    return mask, rim, mean_radius


def granular_fill(shape, rng, mean_radius) -> np.ndarray:
    """A bubbly, granular texture: bright rings and blobs of several sizes with dark gaps."""
    fill = 0.5 + 0.1 * smooth_noise(shape, rng, mean_radius / 4)
    texture = np.zeros(shape, np.float32)
    for sigma, density, weight in ((0.8, 0.03, 5.0), (1.6, 0.012, 7.0), (3.0, 0.003, 9.0)):
        spots = np.zeros(shape, np.float32)
        count = int(density * shape[0] * shape[1])
        np.add.at(spots, (rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)),
                  rng.uniform(0.5, 1.5, count))
        # A difference of Gaussians draws each spot as a bright bubble with a dark halo.
        texture += weight * (gaussian_filter(spots, sigma) - gaussian_filter(spots, 2 * sigma))
    return fill + np.clip(texture * rng.uniform(0.6, 1.0), -0.3, 0.5)


def smooth_fill(shape, rng, mean_radius) -> np.ndarray:
    """A smooth, nearly saturated fill with faint shading and speckle."""
    return (0.95 + 0.05 * smooth_noise(shape, rng, mean_radius / 2)
            + 0.03 * smooth_noise(shape, rng, 1.0))


def draw_pg(rng, size_range) -> np.ndarray:
    """A PG crop: one bright agglomerate centred on a background with blurred needles."""
    width = int(rng.integers(size_range[0], size_range[1] + 1))
    aspect = rng.uniform(0.8, 1.25) if rng.random() < 0.7 else 1.0  # often not square
    height = int(np.clip(round(width * aspect), *size_range))
    shape = (height, width)
    canvas = background(shape, rng)
    middle = draw_needles(shape, rng, rng.integers(2, 8), (60, 240), (2, 5), (0.25, 0.55))
    canvas = screen(canvas, gaussian_filter(middle, rng.uniform(1.5, 3.0)))
    mask, rim, mean_radius = particle_mask(shape, rng)
    if rng.random() < 0.5:
        particle = granular_fill(shape, rng, mean_radius)
    else:
        particle = smooth_fill(shape, rng, mean_radius)
        darkening = rng.uniform(0.4, 0.7) * (0.7 + 0.3 * smooth_noise(shape, rng, 2.0))
        particle = particle - rim * darkening
    canvas = canvas * (1 - mask) + np.clip(particle, 0, 1) * mask
    return finish(canvas, rng, PG_GREY)


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
    for number in range(1, cex_count + 1):
        path = folders["CEX"] / f"CEX ({number}).png"
        save_grey_as_rgb(draw_cex(class_rng(seed, 0, number), cex_size), path)
        written["CEX"].append(path)
        bar.update()
    for group, transforms in pg_groups(lambda g: class_rng(seed, 1, g), pg_count):
        crop = draw_pg(class_rng(seed, 1, group), pg_size_range)
        for transform in transforms:
            path = folders["PG"] / f"PG ({len(written['PG']) + 1}).png"
            save_grey_as_rgb(dihedral(crop, transform), path)
            written["PG"].append(path)
            bar.update()
    bar.close()
    return written


def remove_previous(out):
    """With --overwrite: removes the numbered images an earlier run wrote, so none is left stale."""
    for class_folder, prefix in (("cex", "CEX"), ("pg", "PG")):
        for path in Path(out, KAGGLE_SUBPATH, class_folder).glob(f"{prefix} (*).png"):
            path.unlink()
