"""How often the onset alarm cries wolf, and how fast it sees PG: its average run lengths.

    counts = CountModel.fit(baseline)                     # the baseline frames' PG counts
    arl0 = run_length(step, threshold, counts)            # frames between false alarms
    delay = run_length(step, threshold, counts, rise=2)   # frames from a rise of 2 to the alarm
    threshold = threshold_for(step, counts, arl0_frames=8640)

Statistical process control states a CUSUM by its average run length (ARL): the mean number of
frames until it fires when nothing changes (ARL0, the false-alarm interval), and the mean number
of frames from a lasting rise to the alarm (the detection delay: the zero-state ARL of the risen
counts, the alarm's frame included).

**The counts when nothing changes** are modelled by a distribution fitted to the baseline frames:
a Poisson when their variance is at most their mean, else a negative binomial with their mean and
variance (a model's false PG come in bursts: one frame of bright rods can give several). A
bootstrap of the baseline frames was the other choice; with ten of them it cannot produce a count
the baseline did not show, so it overstates ARL0 for exactly the models whose false PG are rare
and bursty. A baseline with no false PG at all does not prove the rate is 0: it is taken as
ln 2 / n per frame, the rate at which n frames show none half the time. **A rise of d PG regions
per frame** adds a Poisson count of mean d.

**The run lengths are computed, not sampled**: the CUSUM's statistic is a Markov chain on
[0, threshold] (Brook and Evans 1972), here in STATES cells; the ARL from 0 solves a linear
system. That is exact but for the cells' width, and takes milliseconds even where ARL0 is
millions of frames, where sampling could not reach. tests/test_monitoring_arl.py checks it
against long simulated runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

STATES = 400  # cells of the CUSUM's statistic between 0 and the threshold
MOST_COUNT = 150  # counts per frame considered; the rest has no probability worth keeping
RISES = (1, 2, 4)  # PG regions per frame whose detection delays are stated

Step = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (statistic, count) -> next statistic


@dataclass(frozen=True)
class CountModel:
    """The PG count per frame when nothing changes: its mean and variance (Poisson when they are
    equal, else a negative binomial)."""
    mean: float
    variance: float

    @classmethod
    def fit(cls, counts) -> CountModel:
        counts = np.asarray(counts, np.float64)
        n = len(counts)
        mean = max(float(counts.mean()) if n else 0.0, math.log(2) / max(n, 1))
        variance = float(counts.var(ddof=1)) if n > 1 else mean
        return cls(mean, max(variance, mean))

    @property
    def kind(self) -> str:
        return "negative binomial" if self.variance > self.mean * (1 + 1e-6) else "Poisson"

    def describe(self) -> str:
        return f"{self.kind}, mean {self.mean:.3g}, variance {self.variance:.3g} PG per frame"

    def probabilities(self, rise: float = 0.0) -> np.ndarray:
        """P(count = 0, 1, ..., MOST_COUNT) in a frame, with a rise of mean `rise` added."""
        from scipy import stats
        k = np.arange(MOST_COUNT + 1)
        if self.kind == "Poisson":
            p = stats.poisson.pmf(k, self.mean)
        else:
            shape = self.mean ** 2 / (self.variance - self.mean)
            p = stats.nbinom.pmf(k, shape, shape / (shape + self.mean))
        if rise > 0:
            p = np.convolve(p, stats.poisson.pmf(k, rise))[:MOST_COUNT + 1]
        return p / p.sum()

    def sample(self, rng: np.random.Generator, size, rise: float = 0.0) -> np.ndarray:
        """Counts drawn from the model (the tests' long simulated runs)."""
        if self.kind == "Poisson":
            counts = rng.poisson(self.mean, size)
        else:
            shape = self.mean ** 2 / (self.variance - self.mean)
            counts = rng.negative_binomial(shape, shape / (shape + self.mean), size)
        return counts + (rng.poisson(rise, size) if rise > 0 else 0)


def run_length(step: Step, threshold: float, counts: CountModel, rise: float = 0.0,
               states: int = STATES) -> float:
    """The mean number of frames, from a statistic of 0, until it passes `threshold`, each
    frame's count drawn from `counts` (plus a rise of mean `rise`): Brook and Evans' chain."""
    if threshold <= 0:
        return 1.0
    probabilities = counts.probabilities(rise)
    width = threshold / states
    values = np.concatenate([[0.0], (np.arange(1, states + 1) - 0.5) * width])
    after = step(values[:, None], np.arange(len(probabilities))[None, :])
    cell = np.where(after <= 0, 0, np.ceil(np.maximum(after, 0) / width)).astype(int)
    stays = cell <= states  # the others pass the threshold
    moves = np.zeros((states + 1, states + 1))
    rows = np.broadcast_to(np.arange(states + 1)[:, None], cell.shape)
    np.add.at(moves, (rows[stays], cell[stays]),
              np.broadcast_to(probabilities, cell.shape)[stays])
    try:
        lengths = np.linalg.solve(np.eye(states + 1) - moves, np.ones(states + 1))
    except np.linalg.LinAlgError:  # it can never pass the threshold
        return math.inf
    return float(lengths[0]) if np.isfinite(lengths[0]) and lengths[0] > 0 else math.inf


def threshold_for(step_for: Callable[[float], Step], counts: CountModel, arl0_frames: float,
                  most: float = 1000.0) -> float:
    """The smallest threshold whose ARL0 is at least arl0_frames (bisection: ARL0 grows with the
    threshold, by steps, since counts are whole numbers: the ARL0 it gives can be more than
    asked, never less). step_for(threshold) gives the rule's step at that threshold (a rule may
    cap a frame's say by its threshold)."""
    low, high = 0.0, 1.0
    while run_length(step_for(high), high, counts) < arl0_frames:
        low, high = high, high * 2
        if high > most:
            return most
    for _ in range(40):
        middle = (low + high) / 2
        if run_length(step_for(middle), middle, counts) >= arl0_frames:
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class AlarmFigures:
    """What the alarm promises, learnt from the baseline: its false-alarm interval and its
    detection delays, in frames and (at the run's frame interval) in hours."""
    counts: str  # the fitted count model, in words
    threshold: float
    threshold_from: str  # "typed", "setting", or the target it was chosen for
    arl0_frames: float
    delays_frames: dict[int, float]  # rise (PG regions per frame) -> frames to the alarm
    frame_interval_s: float | None
    interval_warning: str = ""  # why the frames' own times were not used, if they were not

    def hours(self, frames: float) -> float | None:
        return None if self.frame_interval_s is None else frames * self.frame_interval_s / 3600

    def as_dict(self) -> dict:
        return {"count_model": self.counts, "threshold": self.threshold,
                "threshold_from": self.threshold_from, "arl0_frames": self.arl0_frames,
                "arl0_hours": self.hours(self.arl0_frames),
                "frame_interval_s": self.frame_interval_s,
                "frame_interval_warning": self.interval_warning,
                "detection_delay_frames": {str(k): v for k, v in self.delays_frames.items()},
                "detection_delay_hours": {str(k): self.hours(v)
                                          for k, v in self.delays_frames.items()}}

    def describe(self) -> str:
        def span(frames):
            hours = self.hours(frames)
            text = "never" if math.isinf(frames) else f"{frames:,.0f} frames"
            return text if hours is None or math.isinf(frames) else f"{text} ({duration(hours)})"
        delays = ", ".join(f"+{rise}: {v:.1f}" for rise, v in self.delays_frames.items())
        return (f"alarm threshold {self.threshold:.3g} ({self.threshold_from}); counts when "
                f"nothing changes: {self.counts}; a false alarm every {span(self.arl0_frames)} "
                f"on average; frames from a rise of PG regions per frame to the alarm: {delays}")


def duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:,.1f} days"
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def parse_duration(text: str) -> float:
    """Seconds in "24h", "7d", "30min", "90s" (a bare number: hours)."""
    units = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(text).strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or "h"
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ValueError(text)
    return value * units[unit]
