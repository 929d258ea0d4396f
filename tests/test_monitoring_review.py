"""Which regions the page offers (gacrystal/monitoring/review.py): every kind interleaved from
the first ones on, each region once, the baseline's PG calls, one region a cluster of looks, the
number asked for, and memory bounded in the run's length."""
from types import SimpleNamespace

import numpy as np

from gacrystal.monitoring import review
from gacrystal.monitoring.review import WHY, ReviewPool


def region(frame, number, label, p_pg, counted=True):
    return SimpleNamespace(frame=f"frame ({frame}).png", particle=number, label=label,
                           p_pg=p_pg, counted=counted)


def fed(pool, frames=20, per_frame=30, looks=5, seed=0):
    """Regions of `looks` well-apart looks (features); PG calls everywhere, a few sure ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (looks, 16))
    for f in range(1, frames + 1):
        for n in range(1, per_frame + 1):
            p = float(rng.uniform())
            look = int(rng.integers(looks))
            pool.add(region(f, n, "PG" if p >= 0.5 else "CEX", p),
                     centres[look] + rng.normal(0, 0.1, 16))
    return centres


def test_the_first_regions_offered_cover_every_kind_and_each_region_comes_once():
    pool = ReviewPool(count=40, baseline_frames=3)
    fed(pool)
    offered = pool.offered()
    assert len(offered) == 40
    keys = [(p.frame, p.particle) for p, _ in offered]
    assert len(set(keys)) == len(keys)
    assert {why for _, why in offered[:4]} == set(WHY.values())
    confident = [p for p, why in offered if why == WHY["confident"]]
    assert confident and all(p.label == "PG" for p in confident)
    assert min(p.p_pg for p in confident) > 0.95  # the surest of 600 regions, half of them PG
    baseline = [p for p, why in offered if why == WHY["baseline"]]
    assert baseline and all(p.label == "PG" and p.frame in
                            {"frame (1).png", "frame (2).png", "frame (3).png"} for p in baseline)
    uncertain = [p for p, why in offered if why == WHY["uncertain"]]
    assert uncertain and max(abs(p.p_pg - 0.5) for p in uncertain) < 0.05


def test_variety_takes_one_region_of_each_look():
    pool = ReviewPool(count=15, baseline_frames=1)  # variety's share: 5 regions, 5 looks
    centres = fed(pool, looks=5)
    features = {(p.frame, p.particle): f for p, f in pool.sample}
    picked = [p for p, why in pool.offered() if why == WHY["variety"]]
    looks = {int(np.argmin(np.linalg.norm(centres - features[(p.frame, p.particle)], axis=1)))
             for p in picked}
    assert len(picked) == 5 and looks == set(range(5))


def test_without_features_variety_spreads_over_p_pg_and_uncounted_regions_are_never_offered():
    pool = ReviewPool(count=20, baseline_frames=1)
    for n in range(1, 201):
        pool.add(region(1 + n // 50, n, "CEX", n / 400))  # resumed: no features
        pool.add(region(9, 1000 + n, "PG", 0.99, counted=False))
    picked = [p.p_pg for p, why in pool.offered() if why == WHY["variety"]]
    assert len(picked) == 7 and max(picked) - min(picked) > 0.3
    assert all(p.counted for p, _ in pool.offered())


def test_memory_is_bounded_in_the_run_length(monkeypatch):
    monkeypatch.setattr(review, "RESERVOIR", 50)
    pool = ReviewPool(count=10)
    fed(pool, frames=40, per_frame=25)
    assert len(pool.sample) == 50 and all(len(h) <= 10 for h in pool.heaps.values())
    assert len(pool.offered()) == 10


def test_a_model_without_a_feature_output_is_monitored_without_features():
    """A card names feature sizes, but the file gives no features (a .keras model without its
    ood.npz): the regions are classified all the same, with no features for the review."""
    from gacrystal.monitoring.candidates import Candidate
    from gacrystal.monitoring.perframe import POOLED, classify_candidates

    class NoFeatures:
        feature_sizes = [6, 8]

        def label(self, crops, batch_size, threshold, reject=True, on_batch=None):
            on_batch(list(range(len(crops))), None, None)
            return [{"label": "CEX", "p_pg": 0.1, "confidence": 0.9, "ood_score": None}
                    for _ in crops]

        def pooled_features(self, features):
            return None
    rgb = np.zeros((64, 64, 3), np.uint8)
    records = classify_candidates(NoFeatures(), [(rgb, [Candidate(0, 0, 32, 32, "tile", 1024.0)])],
                                  8, 0.5, True, features=True)
    assert records[0][0]["label"] == "CEX" and records[0][0].get(POOLED) is None
