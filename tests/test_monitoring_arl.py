"""The alarm's figures (gacrystal/monitoring/arl.py): the run lengths the Markov chain computes
match long simulated runs of the CUSUM, the fitted count model, durations, and the threshold
chosen for a false-alarm interval.

Tolerance: the mean of N simulated run lengths has a standard error of about ARL / sqrt(N) (run
lengths are roughly geometric); with N = 400 that is 5%, and the chain's cells add under 1%: a
stated ARL within 15% of the simulated mean (three standard errors) passes."""
import math

import numpy as np
import pytest

from gacrystal.monitoring import CusumRule, FrameSummary
from gacrystal.monitoring.arl import CountModel, parse_duration, run_length, threshold_for


def simulated_run_lengths(step, threshold, counts, rise, runs, rng, most=200_000):
    lengths = np.zeros(runs)
    statistic = np.zeros(runs)
    alive = np.ones(runs, bool)
    frames = 0
    while alive.any() and frames < most:
        frames += 1
        statistic[alive] = step(statistic[alive], counts.sample(rng, alive.sum(), rise))
        fired = alive & (statistic > threshold)
        lengths[fired] = frames
        alive &= ~fired
    return lengths[~alive]


@pytest.mark.parametrize("baseline", [[0] * 10, [0, 1, 0, 2, 1, 0, 0, 3, 1, 0], [3, 5, 2, 4, 3]])
def test_stated_run_lengths_match_long_simulated_runs(baseline):
    rng = np.random.default_rng(1)
    rule = CusumRule(baseline_frames=len(baseline), threshold=None, false_alarm_every_s=3000)
    summary = FrameSummary(0, 0, 0, 0, None, None, None, 0.0)
    for i, pg in enumerate(baseline):
        summary.pg = pg
        rule.update(summary, elapsed_s=float(i))  # a frame a second: ARL0 of 3,000 frames
    counts = CountModel.fit(baseline)
    step = rule.step_for(rule.threshold)
    for rise, stated in [(0, rule.figures.arl0_frames)] + list(rule.figures.delays_frames.items()):
        observed = simulated_run_lengths(step, rule.threshold, counts, rise, 400, rng)
        assert len(observed) == 400  # every run fired
        assert observed.mean() == pytest.approx(stated, rel=0.15), (rise, stated)


def test_the_count_model_follows_the_baseline():
    assert CountModel.fit([1, 1, 1, 1]).kind == "Poisson"  # variance below the mean: Poisson
    bursty = CountModel.fit([0, 0, 0, 6, 0, 0, 5, 0])
    assert bursty.kind == "negative binomial" and bursty.variance > bursty.mean
    clean = CountModel.fit([0] * 10)  # no false PG: not a rate of 0
    assert clean.mean == pytest.approx(math.log(2) / 10)
    p = bursty.probabilities()
    assert p.sum() == pytest.approx(1) and (p * np.arange(len(p))).sum() == pytest.approx(
        bursty.mean, rel=1e-3)
    risen = bursty.probabilities(rise=2)
    assert (risen * np.arange(len(risen))).sum() == pytest.approx(bursty.mean + 2, rel=1e-3)


def test_a_higher_threshold_gives_longer_run_lengths_and_threshold_for_finds_one():
    counts = CountModel(0.5, 0.9)
    rule = CusumRule(baseline_frames=1, threshold=4.0)
    rule.mean, rule.spread = 0.5, 1.0
    lengths = [run_length(rule.step_for(h), h, counts) for h in (1, 2, 4, 8)]
    assert lengths == sorted(lengths) and lengths[-1] > 100 * lengths[0]
    h = threshold_for(rule.step_for, counts, 5000)
    assert 5000 <= run_length(rule.step_for(h), h, counts) < 10000
    assert run_length(rule.step_for(h * 0.99), h * 0.99, counts) < 5000  # the smallest such


def test_durations_read_as_people_write_them():
    assert parse_duration("24h") == parse_duration("1d") == parse_duration("24") == 86400
    assert parse_duration("90min") == 5400 and parse_duration("30s") == 30
    for bad in ("", "soon", "-1h", "0d", "3 parsecs"):
        with pytest.raises(ValueError):
            parse_duration(bad)
