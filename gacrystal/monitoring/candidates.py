"""Where to look in a whole probe frame: the regions the crop classifier is asked about.

The real crops say what to look for. PG crops (130-230 px a side, often not square) are centred on
one bright agglomerate that fills most of the crop; CEX crops are 151 x 151 windows on the needle
field. So a frame gives two kinds of candidates:

- **blobs**: bright, compact regions wider than a needle. The frame is shrunk by BLOB_SCALE
  (agglomerates are 80-200 px across, so nothing that matters is lost), smoothed, and opened with
  a disc (a grey-level morphological opening: whatever is narrower than the disc, such as a
  needle, disappears; an agglomerate stays); what stays brighter than the frame's level by
  BLOB_CONTRAST of its spread, and covers at least `min_area` px, is a blob. Its box is the
  region's box widened so that the agglomerate fills about CROP_FILL of it, as in the real PG crops.
  Blobs that touch the frame's edge are left out: a cut agglomerate is not what the classifier
  was trained on. A blob with no fine detail inside (its `sharpness`, the mean band-pass
  response at 1.5-3 px, below MIN_SHARPNESS grey levels) is out of focus: a particle far from the
  focal plane, which the monitor reports as UNKNOWN without asking the classifier.
- **tiles**: a grid of `tile_size` squares over the whole frame (the size of the CEX crops the
  model was trained on, from its model card), so that the needle field is sampled as the CEX
  crops were. A tile that is nearly uniform (TILE_MIN_STD) shows no particles and is left out.

scikit-image does the image processing (filters, morphology, measure): it is maintained, works on
NumPy arrays with no conversion, and states its algorithms; OpenCV would be faster at some steps
but is a large binary dependency for what takes about 20 ms per frame here.

The constants below were chosen on one synthetic spiking run (bench/monitor.py, seed 42) and are
reported there on others. What it misses: agglomerates dimmer than the needles around them, agglomerates smaller than
`min_area`, two agglomerates that touch (one blob, one box), and particles cut by the frame's edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gacrystal.images import KAGGLE_CROP_SIDE, grey_levels

BLOB_SCALE = 4  # blobs are found on the frame shrunk by this factor (speed; nothing is lost)
BLOB_OPENING = 20  # px (full size): the disc radius; needles narrower than twice this vanish
BRIDGE_OPENING = 32  # px: bright bridges narrower than twice this are cut between blobs
BLOB_CONTRAST = 0.6  # a blob is brighter than the opened frame's mean by this many of its stds
CROP_FILL = 0.78  # the share of a PG crop's side its agglomerate spans (real crops: 0.64-0.9)
PG_CROP_MIN = 130  # px: the smallest real PG crop; a box is never smaller than this
MIN_SHARPNESS = 3.0  # grey levels; on 20 synthetic frames: out of focus 0.9-3.9, PG 3.5-7.9
TILE_MIN_STD = 6.0  # grey levels: a flatter tile shows no particles
DEFAULT_TILE_SIZE = KAGGLE_CROP_SIDE  # the real CEX crops' size, for models whose card does not say


@dataclass
class Candidate:
    """A region of a frame to classify: its box (x, y, w, h) in px, what found it ("blob" or
    "tile"), and for blobs the area and equivalent diameter of the region itself in px."""
    x: int
    y: int
    w: int
    h: int
    kind: str
    area_px: float
    diameter_px: float | None = None
    sharpness: float | None = None

    @property
    def in_focus(self) -> bool:
        return self.sharpness is None or self.sharpness >= MIN_SHARPNESS

    def covers(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    def overlap(self, other: "Candidate") -> int:
        """The area in px that the two boxes share."""
        dx = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        dy = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        return max(dx, 0) * max(dy, 0)


def equivalent_diameter(area: float) -> float:
    """The diameter of the disc of this area: sqrt(4 area / pi), in the area's unit."""
    return float(np.sqrt(4 * area / np.pi))


def crop_box(centre_x, centre_y, width, height, frame_width, frame_height) -> tuple[int, ...]:
    """The box around a region of width x height so that the region spans CROP_FILL of it, at
    least PG_CROP_MIN a side, moved (not cut) to lie inside the frame where it fits."""
    w = int(min(max(width / CROP_FILL, PG_CROP_MIN), frame_width))
    h = int(min(max(height / CROP_FILL, PG_CROP_MIN), frame_height))
    x = int(np.clip(round(centre_x - w / 2), 0, frame_width - w))
    y = int(np.clip(round(centre_y - h / 2), 0, frame_height - h))
    return x, y, w, h


def find_blobs(grey: np.ndarray, min_area: float) -> list[Candidate]:
    """The bright, compact regions of a frame that do not touch its edge (see the module's
    docstring), largest first."""
    from skimage import filters, measure, morphology, transform
    scale = BLOB_SCALE
    small = filters.gaussian(transform.downscale_local_mean(grey / 255.0, (scale, scale)), 1.0)
    opened = morphology.opening(small, morphology.disk(max(BLOB_OPENING // scale, 1)))
    mask = opened > opened.mean() + BLOB_CONTRAST * opened.std()
    # Cut the thin bright bridges (needles touching an agglomerate) that join blobs to each other
    # and to the frame's edge.
    mask = morphology.opening(mask, morphology.disk(max(BRIDGE_OPENING // scale, 1)))
    regions = measure.regionprops(measure.label(mask))
    height, width = small.shape
    blobs = []
    for region in sorted(regions, key=lambda r: -r.area):
        area = region.area * scale ** 2
        top, left, bottom, right = region.bbox
        if area < min_area or top == 0 or left == 0 or bottom == height or right == width:
            continue
        cy, cx = (np.array(region.centroid) + 0.5) * scale
        box = crop_box(cx, cy, (right - left) * scale, (bottom - top) * scale,
                       grey.shape[1], grey.shape[0])
        blobs.append(Candidate(*box, kind="blob", area_px=float(area),
                               diameter_px=equivalent_diameter(area),
                               sharpness=detail_inside(grey, region, scale)))
    return blobs


def detail_inside(grey: np.ndarray, region, scale: int) -> float:
    """The mean band-pass (difference of Gaussians, 1.5 and 3 px) response inside a region found
    at 1/scale size, in grey levels: granules, pits and edges score high, a blurred patch low."""
    from skimage import filters
    top, left, bottom, right = (v * scale for v in region.bbox)
    pad = 8  # the filters need a margin to see the region's edge as the frame does
    y0, x0 = max(top - pad, 0), max(left - pad, 0)
    patch = grey[y0:bottom + pad, x0:right + pad]
    band = np.abs(filters.gaussian(patch, 1.5) - filters.gaussian(patch, 3.0))
    inside = np.kron(region.image, np.ones((scale, scale), bool))
    return float(band[top - y0:bottom - y0, left - x0:right - x0][inside].mean())


def tile_grid(grey: np.ndarray, tile_size: int) -> list[Candidate]:
    """Non-overlapping tile_size squares covering the frame (centred; the margin left over is
    narrower than a tile), except the nearly uniform ones."""
    height, width = grey.shape
    rows, columns = height // tile_size, width // tile_size
    top, left = (height - rows * tile_size) // 2, (width - columns * tile_size) // 2
    tiles = []
    for row in range(rows):
        for column in range(columns):
            y, x = top + row * tile_size, left + column * tile_size
            if grey[y:y + tile_size, x:x + tile_size].std() >= TILE_MIN_STD:
                tiles.append(Candidate(x, y, tile_size, tile_size, kind="tile",
                                       area_px=float(tile_size ** 2)))
    return tiles


def find_candidates(rgb: np.ndarray, tile_size: int, min_area: float) -> list[Candidate]:
    """Blobs (largest first), then tiles: every region of one frame the classifier is asked about."""
    grey = grey_levels(rgb)
    return find_blobs(grey, min_area) + tile_grid(grey, tile_size)


def cut(rgb: np.ndarray, candidate: Candidate) -> np.ndarray:
    return rgb[candidate.y:candidate.y + candidate.h, candidate.x:candidate.x + candidate.w]
