"""What is counted in a frame and its PG fraction's interval (gacrystal/monitoring/counting.py)."""
import numpy as np
import pytest

from gacrystal.monitoring import candidates as cand
from gacrystal.monitoring.counting import (count_regions, frame_summary, particle_records,
                                           wilson_interval)


def test_tiles_overlapping_a_counted_blob_and_cex_blobs_are_not_counted():
    blob = cand.Candidate(100, 100, 150, 150, "blob", 9000.0, 107.0)
    near = cand.Candidate(200, 200, 151, 151, "tile", 151.0 ** 2)
    far = cand.Candidate(400, 0, 151, 151, "tile", 151.0 ** 2)
    assert count_regions([blob, near, far], ["PG", "CEX", "CEX"]) == [
        (True, ""), (False, "overlaps a counted blob"), (True, "")]
    verdicts = count_regions([blob, near], ["CEX", "CEX"])  # a CEX blob: its tiles count
    assert verdicts[0][0] is False and verdicts[1] == (True, "")


def test_a_frames_summary_counts_only_the_counted_regions():
    blob = cand.Candidate(100, 100, 150, 150, "blob", 9000.0, 107.0)
    near = cand.Candidate(200, 200, 151, 151, "tile", 151.0 ** 2)
    far = cand.Candidate(400, 0, 151, 151, "tile", 151.0 ** 2)
    records = [{"label": label, "p_pg": p, "confidence": max(p, 1 - p), "ood_score": 0.1}
               for label, p in (("PG", 0.9), ("PG", 0.8), ("CEX", 0.1))]
    particles = particle_records("f.png", None, 0.0, [blob, near, far], records, um_per_px=2.0)
    assert [p.counted for p in particles] == [True, False, True]
    assert particles[0].area_um2 == pytest.approx(9000 * 4) and particles[0].diameter_um == 214
    summary = frame_summary(particles, frame_area=1000 * 1000)
    assert (summary.candidates, summary.cex, summary.pg, summary.unknown) == (3, 1, 1, 0)
    assert summary.pg_fraction == 0.5 and summary.pg_area_fraction == pytest.approx(0.009)
    assert summary.pg_fraction_low < 0.5 < summary.pg_fraction_high


def test_wilson_interval_matches_the_formula():
    def wilson(k, n, z=1.959964):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return centre - half, centre + half
    for k, n in ((0, 10), (3, 40), (40, 40)):
        assert wilson_interval(k, n) == pytest.approx(wilson(k, n), abs=1e-6)
    assert wilson_interval(0, 0) == (None, None)
