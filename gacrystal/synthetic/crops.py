"""Synthetic in-situ microscope images laid out exactly like the Kaggle dataset (GAsynth.py).

    generate_dataset("images/synthetic", cex_count=600, pg_count=600)

Output: OUT/archive/cropped/cropped/cex/CEX (n).png and OUT/archive/cropped/cropped/pg/PG (n).png,
8-bit grey images stored as RGB, as in the real download (see docs/data.md).

What the real crops look like (../shared/reference/ and its real/ folder) and how it is drawn
(the primitives are in gacrystal.synthetic.drawing):
- CEX: 151 x 151 crops *covered* by overlapping rods of very different widths, most of them broad
  (15-45 px), blurred and dim, with lengthwise striations, grainy surfaces and bright edges; few
  sharp thin needles; little empty background; a histogram with a long bright tail -> `rod_field`:
  rods at three focus depths, many lying near one direction. Rarer looks: rods radiating from one
  bright point (`starburst`), and an almost blank flat grey field with a few thin dark needles
  (`sparse_field`, with its own low-contrast grey levels). CEX_REGIMES gives the shares.
- PG: crops of 130-230 px a side, often not square, mostly filled by one agglomerate on the CEX
  rod field: a large, nearly saturated plate whose rim is a band of dark pits and granules with a
  granular outline; a dim, mottled mosaic of bright granules; a dim, coarse-textured agglomerate
  barely brighter than its rods, bright needles crossing in front of it; or a few bright granular
  clusters with dark gaps between the granules; rods in front of and behind it -> `agglomerate`
  on `rod_field`, in one of PG_REGIMES.
- Both: grey levels drawn from the real ranges (CEX mean 70-125, std 30-65; PG mean 100-140,
  std 35-77), so that brightness alone does not give the class away.
- PG files come in groups of consecutive numbers holding one crop rotated by multiples of 90
  degrees and/or mirrored, pixel for pixel.

How close this comes to real crops is measured by gacrystal.synthetic.realism (GAsynth.py --compare
DIR). The same primitives draw whole probe frames (gacrystal.synthetic.frames).

Each crop is drawn from its own random stream, seeded by (seed, class, crop number): the same seed
gives the same files whatever the counts.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from gacrystal.cli import progress_bar
from gacrystal.images import KAGGLE_SUBPATH, SYNTHETIC_STAMP, dihedral
from gacrystal.synthetic.drawing import (BROAD, FIELD_REGIMES, UNIT_SIDE, agglomerate, choose,
                                         composite, needles_in_front, rod_field, rods_in_front,
                                         screen, sparse_field, starburst)

CEX_GREY = {"mean": (70, 125), "std": (30, 65)}  # ranges measured on the real images
PG_GREY = {"mean": (100, 140), "std": (35, 77)}
PG_GROUP_SIZES = (4, 5, 6, 7, 8)  # consecutive files per PG crop; about 6 on average, as real
TRANSFORMS = 8  # the rotations/mirrors of the square (gacrystal.images.dihedral)
GENERATOR_VERSION = 3  # 3: starbursts, thin slurry, coarse and clustered PG (issue 23); 2: rod
# fields and pitted/mottled agglomerates (issue 15); 1: thin needles
STAMP_FILE = SYNTHETIC_STAMP  # written beside the images: which generator drew them


# Each crop is drawn in one of these looks, with these probabilities. The first three are the
# common ones; the others are rarer looks of the real crops that a model trained without them
# gets wrong (issue 23): they are drawn so that the classifier learns them.
CEX_REGIMES = {
    "dense": 0.32,      # the crop covered by broad, blurred, low-contrast rods; few sharp needles
    "mixed": 0.20,      # broad blurred rods with sharp thin needles in front
    "bundles": 0.14,    # parallel bundles of striated rods over a blurred field
    "broad": 0.12,      # broad, bright, striated rods with grainy surfaces
    "starburst": 0.12,  # a bright, dense cluster of rods radiating from one point, on the field
    "sparse": 0.10,     # almost blank flat grey, a few thin dark needles (real: CEX (293).png)
}
PG_REGIMES = {
    "plate": 0.35,     # a large, nearly saturated agglomerate with a band of dark pits at its rim
    "mottled": 0.20,   # a dim, granular mosaic, rods in front of and behind it
    "occluded": 0.15,  # plate or mottled, partly hidden behind rods in front
    "coarse": 0.15,    # dim, coarse-textured, barely brighter than the rods, bright needles in front
    "clusters": 0.15,  # several bright granular clusters with dark gaps (real: PG.png)
}
SPARSE_GREY = {"mean": (95, 125), "std": (5, 14)}  # the thin slurry's flat grey (CEX (293): 108, 8)


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
    """A CEX crop in one of CEX_REGIMES: a window on the rod field (with a starburst on it), or
    on a thin slurry."""
    unit = size / UNIT_SIDE if unit is None else unit
    shape = (size, size)
    regime = choose(rng, CEX_REGIMES)
    if regime == "sparse":
        return finish(sparse_field(shape, rng, unit), rng, SPARSE_GREY, unit)
    field = regime if regime in FIELD_REGIMES or regime == BROAD else None
    canvas = rod_field(shape, rng, unit, field)
    if regime == "starburst":
        centre = rng.uniform(0.2, 0.8, 2) * size
        canvas = screen(canvas * rng.uniform(0.6, 0.9), starburst(shape, rng, centre, unit))
    return finish(canvas, rng, CEX_GREY, unit)


def pg_look(rng) -> tuple[str, str]:
    """(regime, agglomerate look) of one PG particle, drawn from PG_REGIMES."""
    regime = choose(rng, PG_REGIMES)
    if regime == "occluded":
        return regime, "plate" if rng.random() < 0.5 else "mottled"
    return regime, "granular" if regime == "clusters" else regime


def granule_clusters(canvas, rng, unit=1.0) -> np.ndarray:
    """Two to four bright granular clusters spread over a crop, the largest near its centre."""
    height, width = canvas.shape
    for i in range(int(rng.integers(2, 5))):
        side = min(height, width)
        radius = rng.uniform(0.22, 0.32) * side if i == 0 else rng.uniform(0.14, 0.24) * side
        offset = rng.normal(0, 0.06, 2) if i == 0 else rng.uniform(-0.35, 0.35, 2)
        centre = np.array([width, height]) * (0.5 + offset)
        canvas = composite(canvas, *agglomerate(canvas.shape, rng, centre, radius, unit,
                                                "granular"))
    return canvas


def draw_pg(rng, size_range, unit=1.0) -> np.ndarray:
    """A PG crop in one of PG_REGIMES: one agglomerate filling most of the crop (or a few
    granular clusters) on the rod field."""
    width = int(rng.integers(size_range[0], size_range[1] + 1))
    aspect = rng.uniform(0.8, 1.25) if rng.random() < 0.7 else 1.0  # often not square
    height = int(np.clip(round(width * aspect), *size_range))
    shape = (height, width)
    regime, look = pg_look(rng)
    # The slurry behind it is darker; a coarse agglomerate is barely brighter than its rods.
    dimming = rng.uniform(0.55, 0.85) if look == "coarse" else rng.uniform(0.35, 0.75)
    canvas = rod_field(shape, rng, unit) * dimming
    if regime == "clusters":
        canvas = granule_clusters(canvas, rng, unit)
    else:
        center = np.array([width, height]) / 2 + rng.normal(0, 0.04, 2) * np.array([width, height])
        radius = rng.uniform(0.32, 0.45) * min(shape)
        canvas = composite(canvas, *agglomerate(shape, rng, center, radius, unit, look))
    if regime == "occluded" or (look in ("mottled", "granular") and rng.random() < 0.5):
        canvas = screen(canvas, rods_in_front(shape, rng, int(rng.integers(1, 5)), unit))
    if look == "coarse":
        canvas = screen(canvas, needles_in_front(shape, rng, unit))
    return finish(canvas, rng, PG_GREY, unit)


def pg_groups(rng_for, count, group_sizes=PG_GROUP_SIZES):
    """Yields (group number, dihedral transform indices) until count files are covered; the first
    is the original."""
    written, group = 0, 0
    while written < count:
        rng = rng_for(group)
        size = min(int(rng.choice(group_sizes)), count - written)
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
                     progress=True, pg_group_sizes=PG_GROUP_SIZES) -> dict[str, list[Path]]:
    """Writes cex_count CEX and pg_count PG images into the Kaggle layout below out.

    Args:
        pg_group_sizes: how many files one PG crop is written as (rotated and mirrored copies),
            drawn from these; the real data's by default.

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
    for group, transforms in pg_groups(lambda g: class_rng(seed, 1, g), pg_count,
                                        pg_group_sizes):
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
