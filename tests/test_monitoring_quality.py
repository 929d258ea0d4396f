"""Frame quality (gacrystal/monitoring/quality.py): each way a probe goes blind is caught with the
measure that decided it, good frames pass, and in the monitor a frame that is not good counts
nothing, feeds no alarm, and several in a row are a "probe blind" event."""
import csv
import shutil

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from gacrystal.images import grey_levels, list_images, read_rgb
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.quality import BLIND_AFTER, FOUL_WINDOW, QualityJudge, measure
from gacrystal.synthetic import frames as synth_frames
from probe import BrightnessClassifier, save_grey


@pytest.fixture(scope="module")
def slurry(tmp_path_factory):
    """20 synthetic frames of a moving slurry (480 x 360, grey levels as float)."""
    folder = tmp_path_factory.mktemp("slurry")
    synth_frames.generate_frames(folder, 20, 0, width=480, height=360, seed=21, progress=False,
                                 workers=1)
    return [grey_levels(read_rgb(p)).astype(np.float32) for p in list_images(folder)]


def impaired(kind: str, grey: np.ndarray) -> np.ndarray:
    if kind == "dark":
        return grey * 0.06
    if kind == "saturated":
        return np.clip(grey * 4 + 60, 0, 255)
    if kind == "out of focus":
        return gaussian_filter(grey, 5)
    raise ValueError(kind)


def test_good_frames_pass_and_each_impairment_is_caught_with_its_measure(slurry):
    judge = QualityJudge()
    assert all(judge.judge(g).good for g in slurry[:10])
    for kind, word in (("dark", "mean grey"), ("saturated", "250 or above"),
                       ("out of focus", "detail")):
        verdict = judge.judge(impaired(kind, slurry[10]))
        assert verdict.verdict == kind and word in verdict.measure
    assert judge.judge(slurry[11]).good
    again = judge.judge(slurry[11])
    assert again.verdict == "duplicate" and "the frame before" in again.measure
    assert judge.judge(slurry[12]).good  # and back to good


def test_a_deposit_on_the_window_is_seen_once_it_has_stayed_for_a_window(slurry):
    ys, xs = np.mgrid[0:360, 0:480]
    mask = gaussian_filter(((xs - 150) ** 2 + (ys - 120) ** 2 < 30 ** 2).astype(np.float32), 3)
    deposit = 50 + 20 * gaussian_filter(np.random.default_rng(0).normal(size=(360, 480)), 2)
    judge = QualityJudge()
    verdicts = [judge.judge(g if i < 8 else g * (1 - mask) + deposit * mask)
                for i, g in enumerate(slurry)]
    assert all(v.good for v in verdicts[:8 + FOUL_WINDOW // 2])  # not yet static for a window
    fouled = verdicts[8 + FOUL_WINDOW - 1:]
    assert fouled and all(v.verdict == "fouled window" for v in fouled)
    assert "unchanged over" in fouled[0].measure and fouled[0].static_share > 0.004


def test_a_change_of_frame_size_starts_the_window_check_again(slurry):
    """A probe whose resolution is changed mid-run: no crash, and the fouled-window check learns
    the new view from its own frames."""
    judge = QualityJudge()
    smaller = [g[:240, :320] for g in slurry]
    verdicts = [judge.judge(g) for g in slurry[:8] + smaller[8:]]
    assert all(v.good for v in verdicts)
    assert verdicts[8].static_share is None  # the new view's window starts empty
    assert verdicts[8 + FOUL_WINDOW - 1].static_share is not None


def test_a_judge_recalled_from_the_verdicts_goes_on_as_the_judge_before_it(slurry):
    """A run going on (frames.csv keeps the verdicts; the judge measures again the few frames it
    kept) judges the next frames as one uninterrupted run: out of focus, duplicate, fouled."""
    ys, xs = np.mgrid[0:360, 0:480]
    mask = gaussian_filter(((xs - 150) ** 2 + (ys - 120) ** 2 < 30 ** 2).astype(np.float32), 3)
    deposit = 50 + 20 * gaussian_filter(np.random.default_rng(0).normal(size=(360, 480)), 2)
    frames = (slurry[:5] + [impaired("out of focus", slurry[5]), slurry[6], slurry[6]]
              + [g * (1 - mask) + deposit * mask for g in slurry[7:]])
    whole = QualityJudge()
    verdicts = [whole.judge(g) for g in frames]
    assert {"out of focus", "duplicate", "fouled window"} <= {v.verdict for v in verdicts}
    for stop in (6, 7, 16):
        judge = QualityJudge()
        judge.recall([v.verdict for v in verdicts[:stop]], lambda i: measure(frames[i]))
        assert [judge.judge(g) for g in frames[stop:]] == verdicts[stop:]
    fresh = QualityJudge()  # what a run going on got before: no fouling for a window
    assert [fresh.judge(g) for g in frames[16:]] != verdicts[16:]


def test_frames_not_good_count_nothing_feed_no_alarm_and_blind_the_probe(tmp_path, slurry):
    folder = tmp_path / "frames"
    folder.mkdir()
    sequence = (["good"] * 4 + ["dark"] * BLIND_AFTER + ["good"] * 2 + ["saturated"]
                + ["good"])
    for i, kind in enumerate(sequence):
        grey = slurry[i] if kind == "good" else impaired(kind, slurry[i])
        save_grey(grey, folder / f"frame ({i + 1}).png")
    shutil.copy(folder / "frame (1).png", folder / "frame (0).png")  # named first, then a copy
    out = tmp_path / "out"
    run = Monitor(BrightnessClassifier(), out, FrameClock("order"), CusumRule(2, threshold=1.0),
                  tile_size=64, min_area=2000, overlay_every=0)
    run.process(list_images(folder))
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert [r["quality"] for r in rows] == ["good", "duplicate"] + sequence[1:]
    dark = [r for r in rows if r["quality"] == "dark"]
    assert all(r["pg"] == r["cex"] == r["pg_fraction"] == "" for r in dark)
    assert [r["event"] for r in rows if r["event"]] == ["probe blind", "probe sees again"]
    assert [r["blind"] for r in rows] == ["0"] * 7 + ["1"] + ["0"] * 4  # the third dark frame
    particles = {r["frame"] for r in csv.DictReader(open(out / "particles.csv"))}
    assert not particles & {r["frame"] for r in rows if r["quality"] != "good"}
    fed = run.alarm.frames_seen  # the alarm saw the good frames only
    assert fed == sum(r["quality"] == "good" for r in rows)
    again = Monitor(BrightnessClassifier(), out, FrameClock("order"), CusumRule(2, threshold=1.0))
    again.resume()  # the replay feeds it the same frames
    assert again.alarm.frames_seen == fed and again.alarm_state == run.alarm_state
