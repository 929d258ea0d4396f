"""The onset alarm (gacrystal/monitoring/alarm.py): the CUSUM rule against noise and a rise, and
the interface every rule shares (a frame's summary in, an AlarmState out), which the monitor,
frames.csv and the trend read."""
import csv

import numpy as np
import pytest

from gacrystal.images import list_images
from gacrystal.monitoring import AlarmState, CusumRule, FrameClock, FrameSummary, Monitor
from gacrystal.monitoring.trend import plot_trend
from probe import BrightnessClassifier, disc_frames


def summary(pg: int) -> FrameSummary:
    return FrameSummary(candidates=pg, cex=0, pg=pg, unknown=0, pg_fraction=None,
                        pg_fraction_low=None, pg_fraction_high=None, pg_area_fraction=0.0)


def test_alarm_ignores_noise_and_odd_frames_and_fires_soon_after_a_rise():
    rng = np.random.default_rng(0)
    quiet = CusumRule(baseline_frames=10)
    noise = rng.poisson(0.4, 300)
    noise[100] = 9  # one frame full of false PG
    noise[200:202] = 9  # two in a row
    assert not any(quiet.update(summary(int(c))).fired_now for c in noise)
    assert quiet.state.statistic < quiet.state.threshold
    rising = CusumRule(baseline_frames=10)
    counts = list(rng.poisson(0.4, 30)) + [4] * 10
    fired = [i for i, c in enumerate(counts) if rising.update(summary(int(c))).fired_now]
    assert fired and 30 <= fired[0] <= 32 and rising.state.fired_at == fired[0]
    assert len(fired) == 1  # printed once


def test_the_state_carries_the_statistic_the_threshold_and_where_it_fired():
    rule = CusumRule(baseline_frames=2, threshold=1.0)
    assert rule.state == AlarmState(0.0, 1.0, "CUSUM", "CUSUM of the PG count")
    states = [rule.update(summary(pg)) for pg in (0, 0, 5, 5, 0, 0)]
    assert [s.statistic for s in states[:2]] == [0.0, 0.0]  # the baseline frames
    assert states[2].statistic == pytest.approx(0.6) and not states[2].fired  # one frame: 60%
    assert states[3].fired_now and states[3].fired_at == 3 and states[3].statistic > 1.0
    assert all(s.fired and s.fired_at == 3 and not s.fired_now for s in states[4:])
    assert all(s.threshold == 1.0 for s in states)


def test_no_single_frame_fires_it_whatever_the_threshold():
    for threshold in (0.3, 1.0, 4.0, 9.0):
        rule = CusumRule(baseline_frames=3, threshold=threshold)
        states = [rule.update(summary(pg)) for pg in (0, 0, 0, 50, 0, 0, 50)]
        assert not any(s.fired for s in states), threshold


def test_a_threshold_chosen_for_a_false_alarm_interval_gives_that_interval():
    from gacrystal.monitoring.arl import CountModel, run_length
    rule = CusumRule(baseline_frames=10, threshold=None, false_alarm_every_s=24 * 3600)
    assert np.isnan(rule.state.threshold)  # chosen once the baseline is learnt
    for i, pg in enumerate([0, 1, 0, 2, 1, 0, 0, 3, 1, 0]):
        rule.update(summary(pg), elapsed_s=30.0 * i)  # a frame every 30 s
    figures = rule.figures
    assert figures.frame_interval_s == 30.0 and rule.state.threshold == figures.threshold
    # the smallest threshold that keeps false alarms at most once a day (counts are whole numbers,
    # so the run length grows by steps: it can promise more than asked, never less)
    assert 24 * 3600 / 30 <= figures.arl0_frames < 2 * 24 * 3600 / 30
    assert 24 <= figures.hours(figures.arl0_frames) < 48
    counts = CountModel.fit([0, 1, 0, 2, 1, 0, 0, 3, 1, 0])
    assert figures.arl0_frames == pytest.approx(
        run_length(rule.step_for(rule.threshold), rule.threshold, counts))
    delays = figures.delays_frames
    assert delays[1] > delays[2] > delays[4] >= 2  # at least two frames, faster for more PG
    typed = CusumRule(baseline_frames=10, threshold=4.0)
    for pg in [0, 1, 0, 2, 1, 0, 0, 3, 1, 0]:
        typed.update(summary(pg))
    assert typed.figures.threshold == 4.0 and "alarm_threshold 4" in typed.figures.threshold_from
    assert typed.figures.frame_interval_s is None and typed.figures.hours(10) is None


def test_frame_times_a_moment_apart_are_not_taken_for_the_probes_interval():
    counts = [0, 1, 0, 2, 1, 0, 0, 3, 1, 0]
    copied = CusumRule(baseline_frames=10, threshold=None, false_alarm_every_s=24 * 3600)
    assert copied.learning() == "0 of 10 good frames"
    for i, pg in enumerate(counts):
        copied.update(summary(pg), elapsed_s=0.068 * i)  # file times of frames copied together
        assert copied.learning() == ("" if i == 9 else f"{i + 1} of 10 good frames")
    figures = copied.figures
    assert figures.frame_interval_s is None and figures.hours(100) is None  # said in frames
    assert "0.068 s apart" in figures.interval_warning
    assert "--interval" in figures.interval_warning
    probe = CusumRule(baseline_frames=10, threshold=None, false_alarm_every_s=24 * 3600)
    for i, pg in enumerate(counts):
        probe.update(summary(pg), elapsed_s=10.0 * i)
    assert probe.figures.interval_warning == "" and probe.figures.frame_interval_s == 10.0
    # the threshold then assumes the --interval default, 10 s, not a frame every 0.068 s
    assert figures.threshold == probe.figures.threshold
    assert figures.arl0_frames < 2 * 24 * 3600 / 10


class EveryPgFrame:
    """Another rule, to show what a rule must provide: fires on the second frame with any PG."""

    def __init__(self):
        self.state = AlarmState(0.0, 1.5, "PG frames", "frames with PG so far")
        self.seen = 0

    figures = None  # it promises nothing

    def learning(self) -> str:
        return ""  # and learns nothing first

    def update(self, summary: FrameSummary, elapsed_s=None) -> AlarmState:
        index, self.seen = self.seen, self.seen + 1
        count = self.state.statistic + (summary.pg > 0)
        now = not self.state.fired and count > self.state.threshold
        self.state = AlarmState(count, 1.5, self.state.name, self.state.label,
                                index if now else self.state.fired_at, now)
        return self.state


def test_any_rule_with_the_interface_drives_the_tables_the_trend_and_a_resume(tmp_path):
    frames, out = tmp_path / "frames", tmp_path / "out"
    disc_frames(frames, count=4, spike=2)
    run = Monitor(BrightnessClassifier(), out, FrameClock("auto"), EveryPgFrame(), tile_size=64,
                  min_area=2000, overlay_every=0)
    run.process(list_images(frames))
    rows = list(csv.DictReader(open(out / "frames.csv")))
    statistic = [float(r["cusum"]) for r in rows]
    assert statistic == [s.alarm.statistic for s in run.frames] and statistic[-1] > 1.5
    fired = next(i for i, r in enumerate(rows) if r["event"] == "alarm")
    assert run.alarm_state.fired_at == fired
    assert [r["alarm"] for r in rows] == ["0"] * fired + ["1"] * (4 - fired)
    plot_trend(run.frames, out / "trend.png")
    again = Monitor(BrightnessClassifier(), out, FrameClock("auto"), EveryPgFrame())
    again.resume()  # the rule replayed from the counts
    assert again.alarm_state == run.alarm_state
