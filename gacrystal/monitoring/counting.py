"""What is counted in a frame, and its PG fraction with the 95% Wilson interval.

- a blob labelled PG or UNKNOWN counts once; a blob that is out of focus counts as UNKNOWN
  without being classified; a blob labelled CEX is a bright part of the needle field, which
  its tiles already count, so it is listed but not counted;
- a tile counts unless it overlaps a counted blob (by TILE_OVERLAP of its area or more).
PG fraction = PG / (CEX + PG) over the counted regions, with its 95% Wilson score interval
(right for proportions near 0 and for few regions, where the normal approximation is not).
"""
from __future__ import annotations

import datetime as dt

from gacrystal.images import CLASS_NAMES, UNKNOWN
from gacrystal.monitoring.candidates import Candidate
from gacrystal.monitoring.records import FrameSummary, ParticleRecord

PG, CEX = CLASS_NAMES[1], CLASS_NAMES[0]
TILE_OVERLAP = 0.1  # a tile sharing this much of its area with a counted blob is not counted
OUT_OF_FOCUS = {"label": UNKNOWN, "p_pg": None, "confidence": None, "ood_score": None,
                "note": "out of focus"}  # the record of a blob not shown to the classifier


def count_regions(candidates: list[Candidate], labels: list[str]) -> list[tuple[bool, str]]:
    """(counted, note) of each candidate by the module's rules."""
    counted_blobs = [c for c, label in zip(candidates, labels)
                     if c.kind == "blob" and label != CEX]
    verdicts = []
    for candidate, label in zip(candidates, labels):
        if candidate.kind == "blob":
            verdicts.append((label != CEX, "" if label != CEX else
                             "part of the needle field (its tiles count)"))
            continue
        covered = max((candidate.overlap(b) for b in counted_blobs), default=0)
        if covered >= TILE_OVERLAP * candidate.w * candidate.h:
            verdicts.append((False, "overlaps a counted blob"))
        else:
            verdicts.append((True, ""))
    return verdicts


def particle_records(frame: str, time: dt.datetime | None, elapsed_s: float,
                     candidates: list[Candidate], records: list[dict],
                     um_per_px: float) -> list[ParticleRecord]:
    """The particles of one frame: each candidate with its classifier record (label, p_pg,
    confidence, ood_score), counted and noted by count_regions; um_per_px 0 leaves µm empty."""
    labels = [r["label"] for r in records]
    particles = []
    for number, (c, r, (counted, note)) in enumerate(
            zip(candidates, records, count_regions(candidates, labels)), start=1):
        particles.append(ParticleRecord(
            frame, time, elapsed_s, number, c.kind, c.x, c.y, c.w, c.h, c.area_px, c.diameter_px,
            c.area_px * um_per_px ** 2 if um_per_px else None,
            c.diameter_px * um_per_px if um_per_px and c.diameter_px else None,
            c.sharpness, r["label"], r["p_pg"], r["confidence"], r["ood_score"], counted,
            note or r.get("note", "")))
    return particles


def frame_summary(particles: list[ParticleRecord], frame_area: int) -> FrameSummary:
    """The counts, PG fraction with its Wilson interval and PG area fraction of one frame."""
    counted = [p for p in particles if p.counted]
    counts = {name: sum(p.label == name for p in counted) for name in (CEX, PG, UNKNOWN)}
    classified = counts[CEX] + counts[PG]
    low, high = wilson_interval(counts[PG], classified)
    pg_area = sum(p.area_px for p in counted if p.label == PG)
    return FrameSummary(len(particles), counts[CEX], counts[PG], counts[UNKNOWN],
                        counts[PG] / classified if classified else None, low, high,
                        pg_area / frame_area)


def wilson_interval(successes: int, total: int) -> tuple[float | None, float | None]:
    """The 95% Wilson score interval of a proportion; (None, None) for no trials."""
    if total == 0:
        return None, None
    from scipy.stats import binomtest
    interval = binomtest(successes, total).proportion_ci(0.95, method="wilson")
    return float(interval.low), float(interval.high)
