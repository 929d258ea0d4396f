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
   Measured on synthetic crops (largest or smallest worst-block difference of 30 crops): rotated
   or mirrored copies <= 2.1, JPEG quality 75 <= 0.8, resized to 60% or 120% <= 5.3 (to 80%:
   up to 7.6, so a few such copies are missed); an 8 x 8 px patch changed >= 6.6, shifted by 2 px
   >= 5.9, distinct crops >= 48. A 1 px shift (>= 2.9) can count as a copy.
4. Copies are joined into groups (union-find); an image with no copy is a group of one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

SMALL, CHECK = 16, 64  # thumbnail sides: candidate search and verification
CANDIDATE_CORRELATION = 0.85  # 16 x 16 correlation above which a pair is verified
BLOCK_TOLERANCE = 5.0  # grey levels: the largest mean difference of an 8 x 8 block of a copy
CHECK_BLUR = 1.0  # pixels (Gaussian sigma) of blur on the 64 x 64 thumbnail: resampling noise out
BLOCK = 8
ROWS_PER_PRODUCT = 2048  # rows of the similarity matrix computed at once (bounds memory)


@dataclass
class Signature:
    """What grouping needs of one image: two grey thumbnails."""
    small: np.ndarray  # (SMALL * SMALL,) float32, zero mean, unit length (zeros for flat images)
    check: np.ndarray  # (CHECK, CHECK) float32 grey levels, slightly blurred


def dihedral(square: np.ndarray, index: int) -> np.ndarray:
    """The index-th of the eight rotations/mirrors of a square array (0 is the identity)."""
    rotated = np.rot90(square, index % 4)
    return np.fliplr(rotated) if index >= 4 else rotated


def signature(pixels: np.ndarray) -> Signature:
    """The thumbnails of an RGB or grey uint8 image of any size (area-averaged, in float)."""
    grey = Image.fromarray(pixels).convert("L").convert("F")
    small = np.asarray(grey.resize((SMALL, SMALL), Image.Resampling.BOX), np.float32).ravel()
    small = small - small.mean()
    norm = np.linalg.norm(small)
    small = small / norm if norm > 1e-3 * SMALL else np.zeros_like(small)
    check = np.asarray(grey.resize((CHECK, CHECK), Image.Resampling.BOX), np.float32)
    return Signature(small, gaussian_filter(check, CHECK_BLUR, mode="nearest"))


def worst_block_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest mean absolute difference over the 8 x 8 blocks of two CHECK x CHECK arrays."""
    blocks = np.abs(a - b).reshape(CHECK // BLOCK, BLOCK, CHECK // BLOCK, BLOCK)
    return float(blocks.mean(axis=(1, 3)).max())


def is_copy(a: Signature, b: Signature) -> bool:
    """True when b is a, up to one of the eight transforms, re-encoding and resizing."""
    return any(worst_block_difference(a.check, dihedral(b.check, k)) <= BLOCK_TOLERANCE
               for k in range(8))


def candidate_pairs(signatures: list[Signature]) -> set[tuple[int, int]]:
    """Pairs (i < j) whose small thumbnails correlate highly under some transform."""
    base = np.stack([s.small for s in signatures])
    pairs = set()
    for k in range(8):
        moved = np.stack([dihedral(s.small.reshape(SMALL, SMALL), k).ravel() for s in signatures])
        for start in range(0, len(base), ROWS_PER_PRODUCT):
            similarity = base[start:start + ROWS_PER_PRODUCT] @ moved.T
            rows, cols = np.nonzero(similarity > CANDIDATE_CORRELATION)
            for i, j in zip(rows + start, cols):
                if i != j:
                    pairs.add((min(i, j), max(i, j)))
    return pairs


def exact_key(pixels: np.ndarray) -> bytes:
    """A hash that is the same for all eight transforms of an image: finds exact copies even of
    flat images, which have no correlation to compare."""
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    return min(hashlib.sha1(np.ascontiguousarray(dihedral(grey, k)).tobytes()
                            + str(dihedral(grey, k).shape).encode()).digest() for k in range(8))


def find_groups(signatures: list[Signature], exact_keys: list[bytes] | None = None) -> list[list[int]]:
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
        for i, j in candidate_pairs(signatures):
            if root(i) != root(j) and is_copy(signatures[i], signatures[j]):
                join(i, j)
    if exact_keys:
        first_with_key = {}
        for i, key in enumerate(exact_keys):
            join(i, first_with_key.setdefault(key, i))
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
