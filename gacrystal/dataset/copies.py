"""Finds copies of one crop: images identical up to the eight rotations/mirrors of the square,
also after re-encoding (JPEG) or resizing, and reports copies that cross train/val/test.

In the real dataset, consecutive PG files hold one crop rotated and/or mirrored; a split that puts
one copy in training and another in test grades the model on an image it has seen.

How (fast enough for 13,664 images on two cores, no pairwise pixel comparisons of full images):
1. Each image is reduced once to two grey thumbnails: 16 x 16 (normalized to zero mean and unit
   length, so brightness and contrast shifts from re-encoding do not matter) and 64 x 64.
2. Candidates: pairs whose 16 x 16 thumbnails correlate above CANDIDATE_CORRELATION under any of
   the eight transforms, found with one matrix product per transform.
3. Verification: a candidate is a copy when, under its best transform, every 8 x 8 block of the
   (slightly blurred) 64 x 64 thumbnails differs by at most BLOCK_TOLERANCE grey levels on
   average. Re-encoding and resizing change every block a little; a different crop, even one that
   differs only in a small patch or by a shift of a few pixels, changes some block a lot.
   Measured on 30 synthetic crops (the largest difference of a copy, the smallest of a change):
   rotated or mirrored copies 0.00, JPEG quality 75 <= 0.75, resized to 60-120% <= 1.96; an
   8 x 8 px patch inverted >= 2.51, a 1 px shift >= 2.65, a 2 px shift >= 5.38, distinct crops
   >= 45. Less blur (0.5, none) lets resized copies overlap the changes.
4. Copies are joined into groups (union-find); an image with no copy is a group of one. Flat
   images (no contrast to correlate) are grouped by an exact hash of all eight transforms.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from gacrystal.images import dihedral

SMALL, CHECK = 16, 64  # thumbnail sides: candidate search and verification
CANDIDATE_CORRELATION = 0.85  # 16 x 16 correlation above which a pair is verified
BLOCK_TOLERANCE = 2.25  # grey levels: the largest mean difference of an 8 x 8 block of a copy
CHECK_BLUR = 1.0  # pixels (Gaussian sigma) of blur on the 64 x 64 thumbnail: resampling noise out
BLOCK = 8
ROWS_PER_PRODUCT = 2048  # rows of the similarity matrix computed at once (bounds memory)


@dataclass
class Signature:
    """What grouping needs of one image: two grey thumbnails (and a hash, for flat images)."""
    small: np.ndarray  # (SMALL * SMALL,) float32, zero mean, unit length (zeros for flat images)
    check: np.ndarray  # (CHECK, CHECK) float32 grey levels, slightly blurred
    flat_key: bytes | None = None  # flat images have no correlation to compare: exact hash instead


@lru_cache(maxsize=1024)
def area_weights(n: int, side: int) -> np.ndarray:
    """(side, n) weights that average n source pixels into side output pixels by exact overlap.

    Exact overlaps are symmetric under reversing the axis, so thumbnails made with them commute
    with rotations and mirrors: a rotated copy's thumbnail is the rotated thumbnail. (PIL's box
    filter rounds its windows asymmetrically: a 90-degree copy of a 160 x 146 crop then differed by
    5.5 grey levels.)
    """
    edges = np.arange(side + 1) * (n / side)
    source = np.arange(n)[None, :]
    overlap = np.minimum(edges[1:, None], source + 1) - np.maximum(edges[:-1, None], source)
    return np.clip(overlap, 0, None) / (n / side)


def thumbnail(grey: np.ndarray, side: int) -> np.ndarray:
    """A side x side area average of a grey image of any shape."""
    height, width = grey.shape
    return (area_weights(height, side) @ grey @ area_weights(width, side).T).astype(np.float32)


def signature(pixels: np.ndarray) -> Signature:
    """The thumbnails of an RGB or grey uint8 image of any size."""
    grey = np.asarray(Image.fromarray(pixels).convert("L"), np.float64)
    small = thumbnail(grey, SMALL).ravel()
    small = small - small.mean()
    norm = np.linalg.norm(small)
    small = small / norm if norm > 1e-3 * SMALL else np.zeros_like(small)
    check = thumbnail(grey, CHECK)
    flat_key = None if small.any() else exact_key(pixels)
    return Signature(small, gaussian_filter(check, CHECK_BLUR, mode="nearest"), flat_key)


def worst_block_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair, the largest mean absolute difference over the 8 x 8 blocks of (n, CHECK, CHECK)."""
    n = len(a)
    blocks = np.abs(a - b).reshape(n, CHECK // BLOCK, BLOCK, CHECK // BLOCK, BLOCK)
    return blocks.mean(axis=(2, 4)).max(axis=(1, 2))


def candidate_pairs(signatures: list[Signature]) -> dict[int, np.ndarray]:
    """For each transform k, the pairs (i < j) whose small thumbnails correlate highly when k is
    applied to j, as an array of shape (pairs, 2)."""
    base = np.stack([s.small for s in signatures])
    square = base.reshape(-1, SMALL, SMALL)
    pairs = {}
    for k in range(8):
        moved = dihedral(square, k, axes=(1, 2)).reshape(len(base), -1)
        found = []
        for start in range(0, len(base), ROWS_PER_PRODUCT):
            rows, cols = np.nonzero(base[start:start + ROWS_PER_PRODUCT] @ moved.T
                                    > CANDIDATE_CORRELATION)
            rows += start
            found.append(np.stack([rows, cols], axis=1)[rows < cols])
        pairs[k] = np.concatenate(found)
    return pairs


def verified_pairs(signatures: list[Signature], candidates: dict[int, np.ndarray]):
    """Yields the candidate pairs (i, j) that are copies (see the module docstring, step 3)."""
    checks = np.stack([s.check for s in signatures])
    for k, pairs in candidates.items():
        for start in range(0, len(pairs), 4096):
            chunk = pairs[start:start + 4096]
            worst = worst_block_differences(checks[chunk[:, 0]],
                                            dihedral(checks[chunk[:, 1]], k, axes=(1, 2)))
            yield from chunk[worst <= BLOCK_TOLERANCE].tolist()


def exact_key(pixels: np.ndarray) -> bytes:
    """A hash that is the same for all eight transforms of an image."""
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    return min(hashlib.sha1(np.ascontiguousarray(dihedral(grey, k)).tobytes()
                            + str(dihedral(grey, k).shape).encode()).digest() for k in range(8))


def find_groups(signatures: list[Signature]) -> list[list[int]]:
    """Groups of copies, as lists of indices in ascending order, ordered by their first index."""
    parent = list(range(len(signatures)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i, j):
        parent[max(root(i), root(j))] = min(root(i), root(j))

    if signatures:
        for i, j in verified_pairs(signatures, candidate_pairs(signatures)):
            join(i, j)
    first_with_key = {}
    for i, s in enumerate(signatures):
        if s.flat_key is not None:
            join(i, first_with_key.setdefault(s.flat_key, i))
    groups: dict[int, list[int]] = {}
    for i in range(len(signatures)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda members: members[0])


def leak_summary(split_of: list[str], groups: list[list[int]]) -> dict:
    """Which groups cross splits, and the share of val and test images with a copy in train.

    Args:
        split_of: the split ("train", "val" or "test") of each image, by index.
        groups: from find_groups.

    Returns:
        {"crossing": [groups that span several splits], "val_leak": share, "test_leak": share,
         "val": n_val, "test": n_test}
    """
    crossing = [g for g in groups if len({split_of[i] for i in g}) > 1]
    in_train_group = set()
    for g in groups:
        if any(split_of[i] == "train" for i in g):
            in_train_group.update(g)
    summary = {"crossing": crossing}
    for split in ("val", "test"):
        members = [i for i, s in enumerate(split_of) if s == split]
        leaked = sum(i in in_train_group for i in members)
        summary[split] = len(members)
        summary[f"{split}_leaked"] = leaked
        summary[f"{split}_leak"] = leaked / len(members) if members else 0.0
    return summary
