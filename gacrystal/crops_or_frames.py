"""Crops or frames: GAinfer.py labels single-particle crops like the Kaggle ones; GAmonitor.py
finds the particles in whole probe frames. Each warns, once a run, when given the other's input.

The rule, by size against the crops the model was trained on (its card's `crop_size`, the median
side of its CEX training crops; 151 px, the Kaggle crops', when the card does not say):

- a frame: the longer side over FRAME_FACTOR crop sides, or a side ratio over MAX_CROP_RATIO. The
  Kaggle crops are 151 px (CEX) and up to about 270 px (PG), never far from square; a 640 x 480
  probe frame is over four CEX crops wide.
- a folder of crops: no image among the first SAMPLE longer than CROP_FACTOR crop sides.

GAinfer.py still labels the frames it warns of (the user may know better; a label of a whole
frame squeezed into the model's square input means little, and the warning says so).
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from gacrystal.images import KAGGLE_CROP_SIDE, list_images

FRAME_FACTOR = 3
MAX_CROP_RATIO = 3.0
CROP_FACTOR = 2
SAMPLE = 20


def crop_side(card: dict) -> int:
    """The side in px of the crops the model was trained on."""
    return int(card.get("crop_size") or KAGGLE_CROP_SIDE)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header; None when it cannot be read (the labeller reports
    that file by itself)."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def looks_like_frame(size: tuple[int, int], side: int) -> bool:
    longer, shorter = max(size), max(min(size), 1)
    return longer > FRAME_FACTOR * side or longer / shorter > MAX_CROP_RATIO


def frame_warning(files: list, card: dict) -> str | None:
    """GAinfer.py's warning when some of its images look like whole frames; None when none do."""
    side = crop_side(card)
    sizes = [(Path(f), image_size(f)) for f in files]
    frames = [(f, size) for f, size in sizes if size and looks_like_frame(size, side)]
    if not frames:
        return None
    first, (width, height) = frames[0]
    return (f"warning: {len(frames)} of {len(files)} images look like whole frames, not crops "
            f"(e.g. {first.name}, {width} x {height} px; this model's crops are about {side} px). "
            "GAinfer.py labels single-particle crops: a frame squeezed into one label means "
            "little. For frames: python GAmonitor.py --frames FOLDER")


def crop_warning(folder: str | Path, card: dict) -> str | None:
    """GAmonitor.py's warning when a frames folder holds crop-sized images; None otherwise."""
    if not Path(folder).is_dir():
        return None
    side = crop_side(card)
    files = list_images(folder)[:SAMPLE]
    sizes = [size for size in map(image_size, files) if size]
    if not sizes or any(max(size) > CROP_FACTOR * side for size in sizes):
        return None
    longest = max(max(size) for size in sizes)
    return (f"warning: the images in {folder} are crop-sized (at most {longest} px; this model's "
            f"crops are about {side} px), not whole probe frames. GAmonitor.py finds particles "
            f"in frames; to label crops: python GAinfer.py --images {folder}")
