"""A corpus of hostile image files, generated (never committed).

`make_corpus(folder)` writes them and returns {file name: None for a file that must be read
correctly, or a word its error message must contain}.
"""
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

NON_UTF8_NAME = os.fsdecode(b"odd_\xff_name.png")  # a name that is not valid UTF-8


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def crystal_like(size=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), np.uint8)


def bomb_png(width=200_000, height=200_000) -> bytes:
    """A tiny PNG whose header declares a huge image (40 gigapixels)."""
    data = bytearray(png_bytes(Image.new("L", (8, 8))))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))  # type + 13 data bytes
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(crystal_like()).convert("CMYK").save(buffer, "JPEG")
    return buffer.getvalue()


def make_corpus(folder: Path) -> dict[str, str | None]:
    folder.mkdir(parents=True, exist_ok=True)
    grey = Image.fromarray(crystal_like())
    valid = png_bytes(grey)
    files = {
        "zero_bytes.png": (b"", "empty"),
        "truncated.png": (valid[: len(valid) // 2], "broken"),
        "text.png": (b"this is a text file, renamed\n" * 20, "not an image"),
        "bomb.png": (bomb_png(), "too large"),
        "sixteen_bit.png": (png_bytes(Image.fromarray(crystal_like().astype(np.uint16) * 257)),
                            None),
        "grey.png": (valid, None),
        "palette.png": (png_bytes(grey.convert("RGB").convert("P")), None),
        "rgba.png": (png_bytes(grey.convert("RGBA")), None),
        "cmyk.jpg": (cmyk_jpeg(), None),
        "one_pixel.png": (png_bytes(Image.new("RGB", (1, 1), (200, 90, 10))), None),
        NON_UTF8_NAME: (valid, None),
    }
    expected = {}
    for name, (data, error) in files.items():
        (folder / name).write_bytes(data)
        expected[name] = error
    # A symlink loop: two links naming each other, and a folder link to its own parent.
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    os.symlink(".", folder / "subfolder_loop")
    expected["loop_a.png"] = expected["loop_b.png"] = "cannot read"
    return expected
