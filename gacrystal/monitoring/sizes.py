"""Size distributions as the PAT world reports them: count and D10/D50/D90 of the particles'
equivalent diameters, number- and area-weighted (ISO 9276-2), per label, per frame and over the
last `window_frames` frames, in px and (with the probe's scale) in µm.

    window = SizeWindow(window_frames=10, um_per_px=1.2)
    rows = window.add(frame_name, elapsed_s, particles)      # sizes.csv rows of this frame
    window.d50("PG")                                          # the headline: PG D50 over the window

Which particles: the counted blobs (PG and UNKNOWN), whose regions the particle finder measured
(gacrystal.monitoring.candidates: the equivalent diameter of the blob's region, sqrt(4 area / pi)).
CEX is sampled by tiles over the needle field, which is not cut into particles, so it has no sizes
here; the CEX rows give the count of counted CEX regions only.

D_x is the diameter below which x% of the distribution lies, read off the cumulative
distribution by linear interpolation between the particles' diameters: number-weighted, each
particle counts once (ISO 9276-2's Q0); area-weighted, each counts by its projected area, d^2
(Q2), which is what a sieve or a laser diffraction instrument weighs more like. With few
particles (a frame holds a handful of PG) the frame's figures jump; the window's are the ones to
watch.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from gacrystal.images import CLASS_NAMES, UNKNOWN

SIZE_LABELS = (CLASS_NAMES[1], UNKNOWN, CLASS_NAMES[0])  # PG, UNKNOWN, CEX (count only)
QUANTILES = (0.1, 0.5, 0.9)
SIZE_COLUMNS = ["frame", "elapsed_s", "label", "scope", "weighting", "count", "d10_px", "d50_px",
                "d90_px", "d10_um", "d50_um", "d90_um"]


def weighted_quantiles(values, weights, quantiles=QUANTILES) -> list[float | None]:
    """The values below which these shares of the total weight lie (linear between the sorted
    values, each placed at the middle of its weight); None for no values."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    if len(values) == 0 or weights.sum() <= 0:
        return [None] * len(quantiles)
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    position = (np.cumsum(weights) - weights / 2) / weights.sum()
    return [float(v) for v in np.interp(quantiles, position, values)]


def distribution(diameters) -> dict[str, list[float | None]]:
    """{"number": [D10, D50, D90], "area": [...]} of these diameters."""
    diameters = np.asarray(diameters, float)
    return {"number": weighted_quantiles(diameters, np.ones_like(diameters)),
            "area": weighted_quantiles(diameters, diameters ** 2)}


class SizeWindow:
    """The counted particles' diameters of the last `window_frames` good frames, by label."""

    def __init__(self, window_frames: int = 10, um_per_px: float = 0.0):
        self.um_per_px = um_per_px
        self.recent: deque[dict[str, list[float]]] = deque(maxlen=window_frames)

    def add(self, frame: str, elapsed_s: float, particles) -> list[dict]:
        """Takes one good frame's particles (gacrystal.monitoring.records.ParticleRecord);
        returns its sizes.csv rows: per label, the frame and the window, number and area."""
        diameters = {label: [p.diameter_px for p in particles
                             if p.counted and p.label == label and p.diameter_px]
                     for label in SIZE_LABELS}
        counts = {label: sum(p.counted and p.label == label for p in particles)
                  for label in SIZE_LABELS}
        self.recent.append(diameters)
        rows = []
        for label in SIZE_LABELS:
            pooled = [d for frame_sizes in self.recent for d in frame_sizes[label]]
            window_count = (sum(len(f[label]) for f in self.recent) if label != CLASS_NAMES[0]
                            else None)
            for scope, values, count in (("frame", diameters[label], counts[label]),
                                         ("window", pooled, window_count)):
                for weighting, d in distribution(values).items():
                    rows.append({"frame": frame, "elapsed_s": elapsed_s, "label": label,
                                 "scope": scope, "weighting": weighting, "count": count,
                                 **self.cells(d)})
        return rows

    def cells(self, quantiles: list[float | None]) -> dict:
        cells = {f"d{round(q * 100)}_px": v for q, v in zip(QUANTILES, quantiles)}
        for q, v in zip(QUANTILES, quantiles):
            cells[f"d{round(q * 100)}_um"] = v * self.um_per_px if v is not None and \
                self.um_per_px else None
        return cells

    def d50(self, label: str = CLASS_NAMES[1]) -> tuple[float | None, float | None]:
        """(px, µm) of the number-weighted D50 of a label over the window."""
        pooled = [d for frame_sizes in self.recent for d in frame_sizes[label]]
        d50 = weighted_quantiles(pooled, np.ones(len(pooled)), (0.5,))[0]
        return d50, (d50 * self.um_per_px if d50 is not None and self.um_per_px else None)
