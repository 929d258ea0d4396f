"""Reading a split folder (GAsplit.py's output: train/, val/ and test/, each with CEX/ and PG/):
the one check that it is there, and each part's paths and labels. No TensorFlow: the scripts
check their data with it before any heavy import or download."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.images import CLASS_NAMES, class_subfolders, list_images

SPLIT_NAMES = ("train", "val", "test")


def check_split_folder(data: str | Path, setting: str = "data"):
    """The one check that a split folder (GAsplit's output: train/ val/ test/) is there, before
    any work; list_split then says which class is missing where."""
    if not any(Path(data, name).is_dir() for name in SPLIT_NAMES):
        raise UserError(f"no split folder at {setting}={data}; make one with `python GAsplit.py` "
                        "(or run `python GAmain.py --demo`, which makes synthetic data)")


def list_split(split_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Paths and labels (CEX = 0, PG = 1) of one split folder's part (train/, val/ or test/)."""
    split_dir = Path(split_dir)
    paths, labels = [], []
    folders = class_subfolders(split_dir)
    for label, name in enumerate(CLASS_NAMES):
        folder = folders.get(name)
        files = list_images(folder) if folder else []
        if not files:
            raise UserError(f"{split_dir} has no {name} images (expected {split_dir}/{name}/*.png); "
                            "both classes are needed to train and evaluate a CEX/PG classifier")
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, np.array(labels, np.float32)


def check_split(data: str | Path):
    """The split folder and every part of it, with both classes in each: a missing one is a
    one-line error before training starts."""
    check_split_folder(data)
    for name in SPLIT_NAMES:
        list_split(Path(data, name))
