"""Whole frames made of real crops, to check the monitor on real texture (GAsynth.py --frames N
--from_crops DIR).

    draw = MosaicDrawer.from_folder("../shared/reference/real")
    pixels, objects = draw(rng, 1280, 960, pg_count=2)

A frame is a mosaic of the CEX crops (each placed at a random one of the eight rotations and
mirrors, overlapping its neighbours by OVERLAP px, the seams blended by weights that fall off
linearly towards each crop's edge, the grid shifted at random from frame to frame), with
`pg_count` PG crops pasted at places that do not overlap, each turned at random and faded into the
mosaic over its outer FADE share, so that no crop edge is left for the particle finder. The PG
crops of the Kaggle set are centred on one particle: its box in truth.csv is the crop's.

Any folder of labelled crops will do (the Kaggle Cropped folder, `../shared/reference/real/`): a
user can watch the monitor find and label real particles before trusting it on their probe. The
crops' pixels are used as they are; only the seams are blended.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gacrystal.images import dihedral, grey_levels, read_rgb
from gacrystal.synthetic.frames import place_apart

OVERLAP = 24  # px that neighbouring CEX crops share (blended)
FADE = 0.18  # the outer share of a PG crop's side over which it fades into the mosaic


def ramp(length: int, fade: int) -> np.ndarray:
    """Weights along one side: 1 in the middle, falling linearly to near 0 over `fade` px at
    each end."""
    position = np.arange(length, dtype=np.float32)
    distance = np.minimum(position + 0.5, length - 0.5 - position)
    return np.clip(distance / max(fade, 1), 0.0, 1.0)


def feather(shape, fade: int) -> np.ndarray:
    """A crop's blending weights: the outer product of the two sides' ramps."""
    return np.outer(ramp(shape[0], fade), ramp(shape[1], fade))


def cex_mosaic(rng, crops: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """The CEX crops tiled over a width x height frame, float32 grey levels."""
    side = min(min(c.shape) for c in crops)
    step = side - OVERLAP
    total = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    offset = rng.integers(-step + 1, 1, 2)  # where the grid starts, left of and above the frame
    for top in range(int(offset[1]), height, step):
        for left in range(int(offset[0]), width, step):
            crop = dihedral(crops[int(rng.integers(len(crops)))], int(rng.integers(8)))
            crop = crop[:side, :side].astype(np.float32)
            w = feather(crop.shape, OVERLAP)
            y0, x0 = max(top, 0), max(left, 0)
            y1, x1 = min(top + side, height), min(left + side, width)
            if y0 >= y1 or x0 >= x1:
                continue
            part = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            total[y0:y1, x0:x1] += crop[part] * w[part]
            weight[y0:y1, x0:x1] += w[part]
    return total / np.maximum(weight, 1e-6)


def paste(canvas: np.ndarray, crop: np.ndarray, x: int, y: int):
    """Pastes a crop with its top-left corner at (x, y), faded into canvas at its edges."""
    alpha = feather(crop.shape, int(FADE * min(crop.shape)))
    box = canvas[y:y + crop.shape[0], x:x + crop.shape[1]]
    box[:] = box * (1 - alpha) + crop * alpha


@dataclass
class MosaicDrawer:
    """Draws frames from real crops: the `draw` of gacrystal.synthetic.frames.write_frame.
    cex_later: CEX crops that join the mosaic from the spike on (frames with PG), as new crystals
    come into view in a real run: a check of any method that learns the baseline frames."""
    cex: list[np.ndarray]
    pg: list[np.ndarray]
    cex_later: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def from_folder(cls, folder: str | Path, setting: str = "from_crops") -> "MosaicDrawer":
        from gacrystal.synthetic.realism import real_crops
        crops = real_crops(folder, setting)
        return cls([grey_levels(read_rgb(p)) for p in crops["CEX"]],
                   [grey_levels(read_rgb(p)) for p in crops["PG"]])

    def __call__(self, rng, width: int, height: int, pg_count: int):
        """(grey uint8 pixels (height, width), the pasted PG crops' boxes as objects)."""
        canvas = cex_mosaic(rng, self.cex + (self.cex_later if pg_count else []), width, height)
        chosen = [dihedral(self.pg[int(rng.integers(len(self.pg)))], int(rng.integers(8)))
                  for _ in range(pg_count)]
        # place_apart keeps 1.3 radii from the edge and 2.4 mean radii between centres
        radii = [0.42 * max(c.shape) for c in chosen]
        objects = []
        for i, centre in place_apart(rng, radii, width, height):
            crop = chosen[i].astype(np.float32)
            x = int(np.clip(round(centre[0] - crop.shape[1] / 2), 0, width - crop.shape[1]))
            y = int(np.clip(round(centre[1] - crop.shape[0] / 2), 0, height - crop.shape[0]))
            paste(canvas, crop, x, y)
            objects.append({"kind": "pg", "x": x, "y": y, "w": crop.shape[1], "h": crop.shape[0]})
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), objects
