"""The image files: class names and order, where class folders are, and how a file becomes pixels.

This is the one source of truth that splitting, training, evaluation and inference share:

- `CLASS_NAMES[i]` is the class of label i: CEX (cephalexin, the product) = 0, PG (phenylglycine,
  the impurity) = 1. The model's single sigmoid output is P(PG).
- `read_rgb` turns a file into the RGB uint8 pixels the model takes (0-255, no scaling: the model
  applies the ResNet preprocessing itself).

No TensorFlow here, so the split and the ONNX inference path start fast.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("CEX", "PG")  # index = label; the model outputs P(CLASS_NAMES[1]) = P(PG)
POSITIVE_CLASS = CLASS_NAMES[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
KAGGLE_SUBPATH = Path("archive", "cropped", "cropped")  # below the folder the Kaggle zip extracts to
RESIZE_METHODS = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
MAX_PIXELS = 50_000_000  # larger declared sizes are refused before decoding (decompression bombs)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL then raises instead of only warning past 2x this


def natural_key(path: str | Path) -> list:
    """Sort key that orders "PG (9).png" before "PG (10).png" (text order would not)."""
    parts = re.split(r"(\d+)", Path(path).name.lower())
    return [int(part) if part.isdigit() else part for part in parts]


def find_class_folders(root: str | Path) -> dict[str, Path] | None:
    """Finds the cex/ and pg/ folders (any case) in root or in root/archive/cropped/cropped.

    Returns:
        {"CEX": path, "PG": path}, or None when root holds no such pair.
    """
    root = Path(root)
    for candidate in (root, root / KAGGLE_SUBPATH, root / "cropped"):
        if not candidate.is_dir():
            continue
        folders = {p.name.upper(): p for p in candidate.iterdir() if p.is_dir()}
        if all(name in folders for name in CLASS_NAMES):
            return {name: folders[name] for name in CLASS_NAMES}
    return None


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in folder (by suffix, any case), in natural order. Hidden files are skipped."""
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in candidates
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=natural_key)


def open_image(source) -> Image.Image:
    """Opens a path, file object or PIL image; refuses decompression bombs before decoding."""
    if isinstance(source, Image.Image):
        return source
    image = Image.open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"image too large: {width} x {height} pixels (limit {MAX_PIXELS:,})")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Grey, 16-bit, palette, RGBA and CMYK images as 8-bit RGB (alpha dropped, on black)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: keep the top 8 bits, as an 8-bit export of the same image would.
        pixels = np.asarray(image, dtype=np.uint32) >> 8
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def read_rgb(source, size: int | None = None, resize: str = "bilinear") -> np.ndarray:
    """Reads one image as RGB uint8 pixels, resized to size x size when size is given.

    Args:
        source: a path, a binary file object or a PIL image.
        size: the model's input size in pixels; None keeps the image's own size.
        resize: "bilinear" (this project's models) or "nearest" (the original project's models).

    Returns:
        An array of shape (size, size, 3) and dtype uint8, values 0-255.
    """
    image = open_image(source)
    try:
        rgb = to_rgb(image)
    finally:
        if image is not source:  # close only what we opened; a caller's PIL image stays open
            image.close()
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), RESIZE_METHODS[resize])
    return np.asarray(rgb, dtype=np.uint8)
