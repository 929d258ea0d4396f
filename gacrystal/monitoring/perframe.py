"""The per-frame work, which needs that frame alone and so may run anywhere (a cluster's worker,
gacrystal/monitoring/shards.py): reading a frame, its quality Measures, classifying the candidates
of several frames in shared batches; and SeenFrame, what recording a frame needs
(gacrystal.monitoring.monitor.Monitor.record_frames)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from gacrystal.images import ImageError, grey_levels, read_rgb, why_unreadable
from gacrystal.monitoring.candidates import Candidate, cut
from gacrystal.monitoring.counting import OUT_OF_FOCUS
from gacrystal.monitoring.quality import Measures, Quality, measure

POOLED = "pooled"  # the key of a record's pooled features (classify_candidates' features=True)


@dataclasses.dataclass
class SeenFrame:
    """A frame read and judged, with the candidates found in it (none unless it is good): what
    recording it needs. rgb is None where another process read it (read again for an overlay)."""
    path: Path
    mtime: float  # its file's modification time when read (the file may be gone when recorded)
    shape: tuple[int, ...]
    quality: Quality
    candidates: list[Candidate]
    rgb: np.ndarray | None = None

    def pixels(self) -> np.ndarray:
        return self.rgb if self.rgb is not None else read_rgb(self.path)


def read_frame(path: Path) -> tuple[np.ndarray | None, float, str]:
    """(pixels, its file's modification time, "") of a frame, or (None, 0, why) when it cannot
    be read. The time stamp is taken now: the file may be gone when the frame is recorded."""
    try:
        return read_rgb(path), os.stat(path).st_mtime, ""
    except (ImageError, OSError) as error:
        return None, 0.0, why_unreadable(error)


def measures_of(path: Path) -> Measures | None:
    """The quality Measures of a frame's file, None when it cannot be read."""
    rgb, _, _ = read_frame(path)
    return None if rgb is None else measure(grey_levels(rgb))


def classify_candidates(classifier, frames: list[tuple[np.ndarray | None, list[Candidate]]],
                        batch_size: int, threshold: float, reject: bool,
                        features: bool = False) -> list[list[dict]]:
    """The classifier's record of each candidate of each (rgb, candidates) frame: the in-focus
    crops of all the frames in shared batches, OUT_OF_FOCUS for the others (rgb may be None for
    a frame with no candidate in focus). features: each in-focus record also holds the
    backbone's pooled features under POOLED (what gacrystal.monitoring.adaptation fits on)."""
    from PIL import Image
    crops = [Image.fromarray(cut(rgb, c)) for rgb, cs in frames for c in cs if c.in_focus]
    pooled = {}

    def keep_features(indices, pixels, batch_features):
        rows = classifier.pooled_features(batch_features)
        for i, row in zip(indices, rows if rows is not None else []):  # none: no feature output
            pooled[i] = row
    asked = {"on_batch": keep_features} if features else {}
    records = classifier.label(crops, batch_size, threshold, reject=reject, **asked) if crops else []
    for i, row in pooled.items():
        records[i][POOLED] = row
    records = iter(records)
    return [[next(records) if c.in_focus else OUT_OF_FOCUS for c in cs] for _, cs in frames]
