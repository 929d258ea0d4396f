"""The onset alarm, "PG has appeared": a rule that takes each frame's summary and says where it
stands (`AlarmState`, kept in gacrystal.monitoring.records with the frame record that holds it),
and the rule in use, a one-sided CUSUM on the PG count (`CusumRule`), whose
false-alarm interval and detection delays gacrystal.monitoring.arl computes.

Everything else reads the state, never a rule's insides: frames.csv writes its statistic (the
cusum column), whether it has fired and where (alarm, event), the trend plots the statistic
against its threshold, and a resumed run replays its rows through `update`. A new rule is a
class with `state` and `update` here, and nothing elsewhere changes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from gacrystal.monitoring.records import AlarmState, FrameSummary

if TYPE_CHECKING:
    from gacrystal.monitoring.arl import AlarmFigures

ALARM_EXIT_STATUS = 3  # GAmonitor.py's exit status when the alarm has fired
ONE_FRAME_SHARE = 0.6  # of the threshold, the most one frame adds: one cannot fire it, two can


class AlarmRule(Protocol):
    """What the monitor needs of an alarm rule: its state (before any frame: not fired), the
    state after one more frame's summary (the frames given in order, with their seconds since
    the first frame), and, once it has learnt what a frame without PG looks like, what it
    promises (`figures`, gacrystal.monitoring.arl.AlarmFigures; None before), and while it is
    still learning that, how far it has got (`learning`: "" when it is not learning)."""

    state: AlarmState
    figures: AlarmFigures | None

    def update(self, summary: FrameSummary, elapsed_s: float | None = None) -> AlarmState: ...

    def learning(self) -> str: ...


# A probe writes at most about a frame a second; times closer than this are not capture times
# (frames copied together and read by their file times), and no figure is computed from them.
MIN_FRAME_INTERVAL_S = 1.0
ASSUMED_INTERVAL_S = 10.0  # the --interval default, assumed (and said) when the times are unusable


def checked_interval(times: list[float]) -> tuple[float | None, str]:
    """(the frame interval the baseline's times give, or None; a warning when they give an
    implausible one). The median step; None without two times."""
    if len(times) < 2:
        return None, ""
    step = float(np.median(np.diff(times)))
    if step >= MIN_FRAME_INTERVAL_S:
        return step, ""
    return None, (f"warning: the baseline's frames are {step:.3g} s apart by their times, less "
                  f"than a probe's {MIN_FRAME_INTERVAL_S:g} s (files copied together keep "
                  "file times a moment apart). The alarm assumes a frame every "
                  f"{ASSUMED_INTERVAL_S:g} s and states its figures in frames; pass --interval "
                  "SECONDS (the probe's) or --times TABLE.")


class CusumRule:
    """A one-sided CUSUM on the per-frame PG count, each frame's say capped.

    The first `baseline_frames` frames give the count's baseline mean and spread (their spread,
    at least 1 count: the model's own false PG rate, whatever it is, becomes the baseline). After
    them, each frame adds (count - mean) / spread - allowance, capped at `most_per_frame` -
    allowance and at ONE_FRAME_SHARE of the threshold, to a sum that never falls below 0; the
    alarm fires when the sum passes the threshold. The caps (a robust CUSUM) keep one frame full of false PG from
    firing it alone: no fewer than two frames well above the baseline can fire it, three with the
    default threshold of 4 (not necessarily in a row: a quiet frame only takes `allowance` off).
    This assumes the run starts before PG appears: started later, the baseline already holds PG
    and the alarm waits for a further rise.

    The threshold is given, or (threshold None) chosen when the baseline is learnt so that false
    alarms come once every `false_alarm_every_s` seconds on average at the baseline's frame
    interval (gacrystal.monitoring.arl). Either way, `figures` then states the false-alarm
    interval and the detection delays.
    """

    def __init__(self, baseline_frames: int = 10, allowance: float = 0.75,
                 threshold: float | None = 4.0, most_per_frame: float = 2.5,
                 false_alarm_every_s: float | None = None):
        if threshold is None and not false_alarm_every_s:
            raise ValueError("a CusumRule needs a threshold or a false-alarm interval")
        self.baseline_frames, self.allowance, self.threshold = baseline_frames, allowance, threshold
        self.most_per_frame, self.false_alarm_every_s = most_per_frame, false_alarm_every_s
        self.baseline: list[int] = []
        self.baseline_times: list[float] = []
        self.mean = self.spread = 0.0
        self.frames_seen = 0
        self.figures: AlarmFigures | None = None
        self.state = AlarmState(0.0, threshold if threshold is not None else float("nan"),
                                "CUSUM", "CUSUM of the PG count")

    def step_for(self, threshold: float):
        """The CUSUM's arithmetic after the baseline, at this threshold: (sum, count) -> sum."""
        mean, spread = self.mean, self.spread
        most = min(self.most_per_frame - self.allowance, ONE_FRAME_SHARE * threshold)

        def step(statistic, count):
            rise = np.minimum((count - mean) / spread - self.allowance, most)
            return np.maximum(0.0, statistic + rise)
        return step

    def learn_baseline(self):
        """The baseline's mean and spread, the threshold (from the false-alarm interval unless
        given), and what the rule then promises."""
        from gacrystal.monitoring import arl
        self.mean = float(np.mean(self.baseline))
        self.spread = max(float(np.std(self.baseline)), 1.0)
        counts = arl.CountModel.fit(self.baseline)
        interval, warning = checked_interval(self.baseline_times)
        chosen_from = f"alarm_threshold {self.threshold:g}" if self.threshold is not None else ""
        if self.threshold is None:
            frames = self.false_alarm_every_s / (interval or ASSUMED_INTERVAL_S)
            self.threshold = arl.threshold_for(self.step_for, counts, frames)
            chosen_from = f"a false alarm every {arl.duration(self.false_alarm_every_s / 3600)}"
        step = self.step_for(self.threshold)
        self.figures = arl.AlarmFigures(
            counts.describe(), self.threshold, chosen_from,
            arl.run_length(step, self.threshold, counts),
            {rise: arl.run_length(step, self.threshold, counts, rise) for rise in arl.RISES},
            interval, warning)

    def learning(self) -> str:
        if len(self.baseline) >= self.baseline_frames:
            return ""
        return f"{len(self.baseline)} of {self.baseline_frames} good frames"

    def update(self, summary: FrameSummary, elapsed_s: float | None = None) -> AlarmState:
        index, self.frames_seen = self.frames_seen, self.frames_seen + 1
        cusum = self.state.statistic
        if len(self.baseline) < self.baseline_frames:
            self.baseline.append(summary.pg)
            if elapsed_s is not None:
                self.baseline_times.append(elapsed_s)
            if len(self.baseline) == self.baseline_frames:
                self.learn_baseline()
        else:
            cusum = float(self.step_for(self.threshold)(cusum, summary.pg))
        threshold = self.threshold if self.threshold is not None else float("nan")
        fired_now = not self.state.fired and cusum > threshold
        self.state = AlarmState(cusum, threshold, self.state.name, self.state.label,
                                index if fired_now else self.state.fired_at, fired_now)
        return self.state
