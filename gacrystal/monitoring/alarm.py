"""The onset alarm, "PG has appeared": a rule that takes each frame's summary and says where it
stands (`AlarmState`), and the rule in use, a one-sided CUSUM on the PG count (`CusumRule`).

Everything else reads the state, never a rule's insides: frames.csv writes its statistic (the
cusum column), whether it has fired and where (alarm, event), the trend plots the statistic
against its threshold, and a resumed run replays its rows through `update`. A new rule is a
class with `state` and `update` here, and nothing elsewhere changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from gacrystal.monitoring.records import FrameSummary

ALARM_EXIT_STATUS = 3  # GAmonitor.py's exit status when the alarm has fired


@dataclass(frozen=True, slots=True)
class AlarmState:
    """Where an alarm rule stands after a frame.

    Attributes:
        statistic: what the rule sums or tests (frames.csv's cusum column).
        threshold: the alarm fires when the statistic passes it.
        name, label: the statistic's short name (the trend's axis) and what it is (its legend).
        fired_at: the index of the frame where the alarm fired; None: it has not (yet).
        fired_now: it fired on this frame (frames.csv's event column).
    """
    statistic: float
    threshold: float
    name: str
    label: str
    fired_at: int | None = None
    fired_now: bool = False

    @property
    def fired(self) -> bool:
        return self.fired_at is not None


class AlarmRule(Protocol):
    """What the monitor needs of an alarm rule: its state (before any frame: not fired), and
    the state after one more frame's summary, the frames given in order."""

    state: AlarmState

    def update(self, summary: FrameSummary) -> AlarmState: ...


class CusumRule:
    """A one-sided CUSUM on the per-frame PG count, each frame's say capped.

    The first `baseline_frames` frames give the count's baseline mean and spread (their spread,
    at least 1 count: the model's own false PG rate, whatever it is, becomes the baseline). After
    them, each frame adds (count - mean) / spread - allowance, capped at `most_per_frame` -
    allowance, to a sum that never falls below 0; the alarm fires when the sum passes `threshold`.
    The cap (a robust CUSUM) is what keeps one frame full of false PG from firing it alone: with
    the defaults, no fewer than three frames well above the baseline can fire it (not necessarily
    in a row: a quiet frame only takes `allowance` off), and a lasting rise fires it on its third
    frame. This assumes the run starts before PG appears:
    started later, the baseline already holds PG and the alarm waits for a further rise.
    """

    def __init__(self, baseline_frames: int = 10, allowance: float = 0.75, threshold: float = 4.0,
                 most_per_frame: float = 2.5):
        self.baseline_frames, self.allowance, self.threshold = baseline_frames, allowance, threshold
        self.most_per_frame = most_per_frame
        self.baseline: list[int] = []
        self.frames_seen = 0
        self.state = AlarmState(0.0, threshold, "CUSUM", "CUSUM of the PG count")

    def update(self, summary: FrameSummary) -> AlarmState:
        index, self.frames_seen = self.frames_seen, self.frames_seen + 1
        cusum = self.state.statistic
        if len(self.baseline) < self.baseline_frames:
            self.baseline.append(summary.pg)
        else:
            mean = float(np.mean(self.baseline))
            spread = max(float(np.std(self.baseline)), 1.0)
            rise = min((summary.pg - mean) / spread, self.most_per_frame)
            cusum = max(0.0, cusum + rise - self.allowance)
        fired_now = not self.state.fired and cusum > self.threshold
        self.state = AlarmState(cusum, self.threshold, self.state.name, self.state.label,
                                index if fired_now else self.state.fired_at, fired_now)
        return self.state
