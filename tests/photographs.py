"""Real photographs and micrographs that ship with scikit-image (`skimage.data`, offline), for
measuring the out-of-distribution check on images it was not built with (it is fitted and
calibrated on the model's own crops only; none of these ever built it)."""
import numpy as np

# Photographs and micrographs only (skimage.data's drawings, logos and phantoms are left out;
# `chelsea` is `cat`). Colour ones are also used in grey.
NAMES = ("astronaut", "brick", "camera", "cat", "cell", "clock", "coffee", "coins", "grass",
         "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
         "retina", "rocket", "text")


def as_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.uint8)


def is_colour(rgb: np.ndarray) -> bool:
    return bool(np.abs(rgb.astype(int) - rgb.mean(axis=2, keepdims=True)).mean() > 2)


def in_grey(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    grey = np.rint(rgb.astype(np.float64) @ weights).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def photographs() -> dict[str, np.ndarray]:
    """{name: RGB uint8}: every photograph in colour where it has colour, and every one in grey
    ("NAME (grey)")."""
    import skimage.data
    images = {}
    for name in NAMES:
        rgb = as_rgb(getattr(skimage.data, name)())
        if is_colour(rgb):
            images[name] = rgb
        images[f"{name} (grey)"] = in_grey(rgb)
    return images


def faces(count: int = 200) -> list[np.ndarray]:
    """Small grey photographs of faces (skimage.data.lfw_subset: 25 x 25 px)."""
    import skimage.data
    return [as_rgb(np.rint(face * 255)) for face in skimage.data.lfw_subset()[:count]]
