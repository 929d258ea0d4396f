"""Images that are not crystal microscope images, for the rejection tests (generated, seeded)."""
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("scene", "text", "gradient", "checkerboard", "noise", "flat")


def scene(rng, size) -> Image.Image:
    """A colour photograph-like scene: sky, ground, a sun and a few blurred coloured objects."""
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    horizon = int(size * rng.uniform(0.3, 0.7))
    sky, ground = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    for y in range(size):
        colour = sky if y < horizon else ground
        shade = 0.6 + 0.4 * y / size
        draw.line([(0, y), (size, y)], fill=tuple(int(c * shade) for c in colour))
    for _ in range(rng.integers(2, 6)):
        x, y, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(size // 10, size // 3))]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.integers(0, 256, 3).tolist()))
    return image.filter(ImageFilter.GaussianBlur(size / 100))


def text(rng, size) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(rng.integers(180, 256, 3).tolist()))
    draw = ImageDraw.Draw(image)
    words = ["crystal", "sample", "batch 42", "report", "yield", "assay", "lot 7"]
    for y in range(2, size, max(size // 8, 8)):
        draw.text((2, y), " ".join(rng.choice(words, 3)), fill=tuple(rng.integers(0, 80, 3).tolist()))
    return image


def gradient(rng, size) -> Image.Image:
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    row = start * (1 - t) + end * t
    pixels = np.repeat(row, size, axis=0)
    if rng.random() < 0.5:
        pixels = pixels.transpose(1, 0, 2)
    return Image.fromarray(pixels.astype(np.uint8))


def checkerboard(rng, size) -> Image.Image:
    cell = int(rng.integers(2, max(size // 4, 3)))
    y, x = np.mgrid[:size, :size] // cell
    on = ((x + y) % 2).astype(bool)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    return Image.fromarray(np.where(on[..., None], a, b).astype(np.uint8))


def noise(rng, size) -> Image.Image:
    if rng.random() < 0.5:
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8))
    grey = rng.integers(0, 256, (size, size), np.uint8)
    return Image.fromarray(grey).convert("RGB")


def flat(rng, size) -> Image.Image:
    return Image.new("RGB", (size, size), tuple(rng.integers(0, 256, 3).tolist()))


def foreign_images(count_per_kind: int, size: int = 64, seed: int = 0) -> dict[str, list]:
    """{kind: [PIL images]} for each kind in KINDS."""
    rng = np.random.default_rng(seed)
    makers = {"scene": scene, "text": text, "gradient": gradient, "checkerboard": checkerboard,
              "noise": noise, "flat": flat}
    return {kind: [makers[kind](rng, size) for _ in range(count_per_kind)] for kind in KINDS}
