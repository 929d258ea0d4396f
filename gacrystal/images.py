"""The image files: class names and order, where class folders are, and how a file becomes pixels.

This is the one source of truth that splitting, training, evaluation and inference share:

- `CLASS_NAMES[i]` is the class of label i: CEX (cephalexin, the product) = 0, PG (phenylglycine,
  the impurity) = 1. The model's single sigmoid output is P(PG); an image is PG when
  P(PG) >= `DECISION_THRESHOLD` (`predicted_labels`).
- `read_rgb` turns a file into the RGB uint8 pixels the model takes (0-255, no scaling: the model
  applies the ResNet preprocessing itself); `read_batches` is the one batch reader that labelling,
  Grad-CAM, the embedding map and quantization use.
- `dihedral` is the one spelling of the eight rotations/mirrors of a square image.

No TensorFlow here, so the split and the ONNX inference path start fast.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

CLASS_NAMES = ("CEX", "PG")  # index = label; the model outputs P(CLASS_NAMES[1]) = P(PG)
POSITIVE_CLASS = CLASS_NAMES[1]
DECISION_THRESHOLD = 0.5  # P(PG) at or above this is PG, unless a caller sets its own threshold
UNKNOWN = "UNKNOWN"  # the label of an image unlike the training images (see gacrystal.ood)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
KAGGLE_SUBPATH = Path("archive", "cropped", "cropped")  # below the folder the Kaggle zip extracts to
# Written by the synthetic generator beside its images and carried into their split: a model
# trained on such a split is marked synthetic-only on its card.
SYNTHETIC_STAMP = "generator.json"
KAGGLE_CROP_SIDE = 151  # px, the side of the Kaggle data's CEX crops (the original's training data)
RESIZE_METHODS = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST}
EXIF_DATETIME = 306  # the TIFF/EXIF DateTime tag, "YYYY:MM:DD HH:MM:SS" (a frame's time)
MAX_PIXELS = 50_000_000  # larger declared sizes are refused before decoding (decompression bombs)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL then raises instead of only warning past 2x this
IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939], np.float32)  # as in keras.applications
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32) * 255


def grey_levels(rgb: np.ndarray) -> np.ndarray:
    """Grey levels 0-255 (float32) of RGB pixels: the probe's images are grey stored as RGB."""
    return np.asarray(rgb, np.float32).mean(axis=2)


def predicted_labels(p_pg, threshold: float = DECISION_THRESHOLD) -> np.ndarray:
    """Class indices (CEX = 0, PG = 1) from P(PG)."""
    return (np.asarray(p_pg).ravel() >= threshold).astype(int)


def label_and_confidence(p_pg: float, threshold: float = DECISION_THRESHOLD) -> tuple[str, float]:
    """One image's class name from its P(PG), and the probability of that class."""
    is_pg = bool(predicted_labels(p_pg, threshold)[0])
    return CLASS_NAMES[int(is_pg)], float(p_pg if is_pg else 1.0 - p_pg)


def dihedral(pixels: np.ndarray, index: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """The index-th of the eight rotations/mirrors of an image (0 is the identity; 1-3 rotate by
    90, 180, 270 degrees; 4-7 are those, mirrored left-right). `axes`: the image's (rows,
    columns) axes, (1, 2) for a stack of images."""
    rotated = np.rot90(pixels, index % 4, axes=axes)
    return np.flip(rotated, axis=axes[1]) if index >= 4 else rotated


def natural_key(path: str | Path) -> list:
    """Sort key that orders "PG (9).png" before "PG (10).png" (text order would not)."""
    parts = re.split(r"(\d+)", Path(path).name.lower())
    return [int(part) if part.isdigit() else part for part in parts]


def class_subfolders(folder: str | Path) -> dict[str, Path]:
    """The class folders directly in folder, by class name: cex/, CEX/, Cex/ are all "CEX"."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.name.upper(): p for p in sorted(folder.iterdir())
            if p.is_dir() and p.name.upper() in CLASS_NAMES}


def find_class_folders(root: str | Path) -> dict[str, Path] | None:
    """Finds the cex/ and pg/ folders (any case) in root or below it on the Kaggle zip's path,
    archive/cropped/cropped, from any of its levels (a zip extracted without its top folder
    has cropped/cropped).

    Returns:
        {"CEX": path, "PG": path}, or None when root holds no such pair.
    """
    root = Path(root)
    parts = KAGGLE_SUBPATH.parts
    for candidate in [root] + [root.joinpath(*parts[i:]) for i in reversed(range(len(parts)))]:
        folders = class_subfolders(candidate)
        if len(folders) == len(CLASS_NAMES):
            return {name: folders[name] for name in CLASS_NAMES}
    return None


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in folder (by suffix, any case), in natural order. Hidden files are skipped;
    linked folders are not followed (a link loop cannot trap the walk)."""
    folder = Path(folder)
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    # Broken and looping links are listed too, so that readers report them by name.
    files = [p for p in candidates
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
             and (p.is_file() or (p.is_symlink() and not p.exists()))]
    return sorted(files, key=natural_key)


class ImageError(ValueError):
    """A file that is not a usable image; the message says why in a few words."""


def open_image(source) -> Image.Image:
    """Opens a path, file object or PIL image; refuses decompression bombs before decoding."""
    if isinstance(source, Image.Image):
        return source
    image = Image.open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageError(f"image too large: {width} x {height} pixels (limit {MAX_PIXELS:,}); "
                         "not decoded")
    return image


def why_unreadable(error: Exception) -> str:
    """A short reason for a decoder's exception (decoders raise many kinds for broken files)."""
    if isinstance(error, ImageError):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, OSError) and error.strerror:  # permissions, a symlink loop, a folder
        return f"cannot read the file ({error.strerror})"
    if isinstance(error, UnidentifiedImageError):
        return "not an image (unknown or unsupported format)"
    if isinstance(error, Image.DecompressionBombError):
        return f"image too large (limit {MAX_PIXELS:,} pixels); not decoded"
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"broken image data ({type(error).__name__}{': ' + text if text else ''})"


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
        source: a path, the file's bytes, a binary file object or a PIL image.
        size: the model's input size in pixels; None keeps the image's own size.
        resize: "bilinear" (this project's models) or "nearest" (the original project's models).

    Returns:
        An array of shape (size, size, 3) and dtype uint8, values 0-255.

    Raises:
        ImageError: for anything that is not a readable image (empty, truncated, not an image,
            larger than MAX_PIXELS), with the reason in its message.
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        if (isinstance(source, io.BytesIO) and not source.getbuffer().nbytes) or (
                isinstance(source, (str, Path)) and os.path.getsize(source) == 0):
            raise ImageError("empty file (0 bytes)")
        image = open_image(source)
        try:
            rgb = to_rgb(image)
        finally:
            if image is not source:  # close only what we opened; a caller's PIL image stays open
                image.close()
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), RESIZE_METHODS[resize])
        return np.asarray(rgb, dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as error:  # decoders raise OSError, SyntaxError, struct.error, ... for junk
        raise ImageError(why_unreadable(error)) from error


def preprocessing_weights(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The (kernel, bias) of a 1x1 convolution that maps RGB 0-255 to a backbone's input.

    The models built here apply this inside themselves (gacrystal.model); models without it, such as the
    original project's, get it applied by `preprocess`. Modes, as in keras.applications:
    "caffe" (ResNet v1) matches keras.applications.resnet.preprocess_input exactly: the kernel is
    a channel permutation (RGB -> BGR) and the bias subtracts the ImageNet means in BGR order;
    "tf" (ResNet v2) scales to -1..1; "torch" (keras-hub presets) scales to 0..1 and standardizes.
    """
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    if mode == "caffe":
        for rgb_channel in range(3):
            kernel[0, 0, rgb_channel, 2 - rgb_channel] = 1.0
        return kernel, -IMAGENET_MEAN_RGB[::-1].copy()
    if mode == "tf":
        kernel[0, 0] = np.eye(3) / 127.5
        return kernel, -np.ones(3, np.float32)
    if mode == "torch":
        kernel[0, 0] = np.diag(1.0 / IMAGENET_STD_RGB)
        return kernel, -IMAGENET_MEAN_RGB / IMAGENET_STD_RGB
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def preprocess(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Applies a backbone's preprocessing to RGB 0-255 pixels (..., 3), outside any model."""
    kernel, bias = preprocessing_weights(mode)
    return np.asarray(pixels, np.float32) @ kernel[0, 0] + bias


def read_for_model(source, size: int, resize: str = "bilinear") -> tuple[np.ndarray | None, str]:
    """(pixels, "") or (None, reason) for a path, bytes, PIL image or RGB array; an array already
    at the model's size passes straight through. An unreadable source is a result, not a crash."""
    try:
        if isinstance(source, np.ndarray):
            if source.shape[:2] == (size, size):
                return np.asarray(source, np.float32), ""
            source = Image.fromarray(np.asarray(source).clip(0, 255).astype(np.uint8))
        return read_rgb(source, size, resize), ""
    except (ImageError, OSError, ValueError) as error:
        return None, why_unreadable(error)


def read_batches(sources: list, batch_size: int, size: int, resize: str = "bilinear",
                 progress: bool = False):
    """Yields (indices, pixels, errors) per batch of sources, decoding the next batch in threads
    while the caller works on this one. pixels[i] is None where errors[i] says why.

    The one reader of images for a model outside training's tf.data pipeline: labelling,
    Grad-CAM, the embedding map, int8 calibration and the OOD features of GAquantize and
    GAcalibrate take their pixels from here.
    """
    from concurrent.futures import ThreadPoolExecutor
    from gacrystal.cli import progress_bar
    chunks = [list(range(i, min(i + batch_size, len(sources))))
              for i in range(0, len(sources), batch_size)]
    bar = progress_bar(len(sources), "reading", enabled=progress and len(sources) >= 2 * batch_size)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        def submit(chunk):
            return [pool.submit(read_for_model, sources[i], size, resize) for i in chunk]
        upcoming = submit(chunks[0]) if chunks else []
        for n, chunk in enumerate(chunks):
            current, upcoming = upcoming, submit(chunks[n + 1]) if n + 1 < len(chunks) else []
            results = [future.result() for future in current]
            yield chunk, [r[0] for r in results], [r[1] for r in results]
            bar.update(len(chunk))
    bar.close()


def read_stack(paths: list, size: int, resize: str = "bilinear", batch_size: int = 32):
    """Yields float32 batches (n, size, size, 3) of the readable images among paths."""
    for _, pixels, _ in read_batches(paths, batch_size, size, resize):
        good = [p for p in pixels if p is not None]
        if good:
            yield np.stack(good).astype(np.float32)
