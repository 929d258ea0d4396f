"""Which regions of a run the page offers for review (monitor.html, corrections.csv): those whose
verdicts teach a model the most about a probe it never saw, in the order to answer them.

On a new probe most of a model's errors are false PG: the probe's CEX texture called PG in every
frame. So the page offers four kinds of region, interleaved by SHARES so that a reviewer who
stops after any number of answers has covered all four:

- **confident**: counted PG calls with the highest P(PG). On a new probe most are false; the true
  ones (after the spike) show what PG looks like on this probe.
- **baseline**: PG calls in the run's first `baseline_frames` frames with regions, the frames the
  alarm learns its normal from (taken to be free of PG): each is a false PG the alarm would
  otherwise take as normal.
- **uncertain**: counted regions whose P(PG) lies nearest the threshold.
- **variety**: one region near the centre of each cluster (k-means) of the backbone's pooled
  features over a uniform sample of the run's counted regions, the largest cluster first: the
  run's looks, so that 100 answers are not 100 views of one texture.

Memory stays flat in the run's length: each kind keeps at most `count` regions, and the sample
for variety RESERVOIR (reservoir sampling, seeded). A run taken up again (`Monitor.resume`) reads
its regions back from particles.csv without their features; variety then spreads its picks over
P(PG) among the regions that have none.
"""
from __future__ import annotations

import heapq
import random

import numpy as np

from gacrystal.images import DECISION_THRESHOLD

DEFAULT_REVIEW_REGIONS = 100
SHARES = {"confident": 0.30, "baseline": 0.15, "uncertain": 0.20, "variety": 0.35}
WHY = {"confident": "confident PG call", "baseline": "PG call in the baseline",
       "uncertain": "uncertain", "variety": "a look of this run"}
RESERVOIR = 2000  # counted regions kept, with their features, for the variety clusters
SEED = 42


def key_of(particle) -> tuple[str, int]:
    return particle.frame, particle.particle


class ReviewPool:
    """Keeps, as particles arrive, the candidates of each kind (see the module's docstring), and
    offers `count` of them in the order to review them."""

    def __init__(self, count: int = DEFAULT_REVIEW_REGIONS, baseline_frames: int = 10,
                 threshold: float = DECISION_THRESHOLD):
        self.count, self.baseline_frames, self.threshold = count, baseline_frames, threshold
        self.heaps = {"confident": [], "baseline": [], "uncertain": []}
        self.sample: list[tuple[object, np.ndarray | None]] = []  # (particle, pooled features)
        self.baseline: list[str] = []  # the first baseline_frames frames with counted regions
        self.last_frame = None
        self.seen = 0  # counted regions so far
        self.random = random.Random(SEED)

    def add(self, particle, features: np.ndarray | None = None):
        """One region of the run, in order (features: its pooled features, where known)."""
        if not particle.counted or particle.p_pg is None:
            return
        if particle.frame != self.last_frame:
            self.last_frame = particle.frame
            if len(self.baseline) < self.baseline_frames:
                self.baseline.append(particle.frame)
        self.seen += 1
        p, order = particle.p_pg, -self.seen  # earlier regions first among equals
        if particle.label == "PG":
            self._keep("confident", (p, order, particle))
            if particle.frame in self.baseline:
                self._keep("baseline", (p, order, particle))
        self._keep("uncertain", (-abs(p - self.threshold), order, particle))
        kept = None if features is None else np.asarray(features, np.float32)
        if len(self.sample) < RESERVOIR:
            self.sample.append((particle, kept))
        elif (slot := self.random.randrange(self.seen)) < RESERVOIR:
            self.sample[slot] = (particle, kept)

    def _keep(self, kind: str, item):
        heap = self.heaps[kind]
        heapq.heappush(heap, item)
        if len(heap) > self.count:
            heapq.heappop(heap)

    def ranked(self, kind: str) -> list:
        """The regions of one kind, the most telling first."""
        if kind == "variety":
            return self.variety()
        return [particle for *_, particle in sorted(self.heaps[kind], reverse=True)]

    def variety(self) -> list:
        """A region near the centre of each cluster of the sample's features, the largest
        cluster first; without features, regions spread evenly over P(PG)."""
        wanted = max(1, round(self.count * SHARES["variety"]))
        with_features = [(p, f) for p, f in self.sample if f is not None]
        if len(with_features) <= wanted:
            spread = sorted((p for p, _ in self.sample), key=lambda p: p.p_pg)
            step = max(len(spread) / wanted, 1.0)
            return [spread[int(i * step)] for i in range(min(wanted, len(spread)))]
        from sklearn.cluster import KMeans
        features = np.stack([f for _, f in with_features])
        k_means = KMeans(wanted, n_init=1, random_state=SEED).fit(features)
        distances = k_means.transform(features)
        sizes = np.bincount(k_means.labels_, minlength=wanted)
        picks = []
        for cluster in np.argsort(-sizes, kind="stable"):
            members = np.flatnonzero(k_means.labels_ == cluster)
            if len(members):
                picks.append(with_features[members[np.argmin(distances[members, cluster])]][0])
        return picks

    def offered(self) -> list[tuple[object, str]]:
        """Up to `count` (region, why) pairs, each region once, the kinds interleaved by SHARES
        (a kind that runs out leaves its turns to the others)."""
        queues = {kind: self.ranked(kind) for kind in SHARES}
        taken = dict.fromkeys(SHARES, 0)
        chosen, keys = [], set()
        while len(chosen) < self.count and any(queues.values()):
            kind = max((k for k in SHARES if queues[k]),
                       key=lambda k: SHARES[k] * (len(chosen) + 1) - taken[k])
            particle = queues[kind].pop(0)
            taken[kind] += 1
            if key_of(particle) not in keys:
                keys.add(key_of(particle))
                chosen.append((particle, WHY[kind]))
        return chosen

    def rows(self) -> list:
        """The offered regions, in order (corrections.csv's rows)."""
        return [particle for particle, _ in self.offered()]
