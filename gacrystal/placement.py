"""Corrected images into a Kaggle-layout training folder (DEST/cex/, DEST/pg/, which GAsplit.py
reads): the one placement rule of `GAinfer.py --apply_corrections` (copies of labelled files) and
`GAmonitor.py --export_crops` (crops cut from monitored frames).

- Nothing is overwritten: a different image of the same name goes beside it, its hash in its name.
- The same image is not written twice.
- An image whose class changed since an earlier run (a reviewer changed their mind) leaves the
  other class's folder: one image never trains under both labels.

Images are compared by their bytes' sha256, under either name they may have been given.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from gacrystal.files import atomic_path
from gacrystal.images import CLASS_NAMES


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_name(name: str, digest: str) -> str:
    """The name an image gets where another image already has its name."""
    path = Path(name)
    return f"{path.stem}_{digest[:8]}{path.suffix}"


def copies_in(folder: Path, name: str, digest: str) -> list[Path]:
    """The copies of an image (name, digest) that `place` may have put into folder."""
    candidates = (folder / name, folder / hashed_name(name, digest))
    return [path for path in candidates
            if path.is_file() and sha256(path.read_bytes()) == digest]


@dataclass(frozen=True)
class Placed:
    path: Path  # where the image is now
    written: bool  # False: it was there already
    relabelled: list[Path]  # its copies removed from the other class's folder


def place(data: bytes, name: str, class_name: str, dest: Path) -> Placed:
    """Puts the image (its file's bytes) as `name` into dest's folder for class_name, by the
    module's rule."""
    digest = sha256(data)
    stale = [copy for other in CLASS_NAMES if other != class_name
             for copy in copies_in(dest / other.lower(), name, digest)]
    for copy in stale:
        copy.unlink()
    folder = dest / class_name.lower()
    folder.mkdir(parents=True, exist_ok=True)
    there = copies_in(folder, name, digest)
    if there:
        return Placed(there[0], False, stale)
    target = folder / name
    if target.exists():
        target = folder / hashed_name(name, digest)
    with atomic_path(target) as temporary:  # a crash leaves no half-written image
        temporary.write_bytes(data)
    return Placed(target, True, stale)
