"""Synthetic whole frames with truth (gacrystal/synthetic/frames.py, GAsynth.py --frames):
deterministic, timed, and never written over other images."""
import datetime as dt

import numpy as np
import pytest

from gacrystal.errors import UserError
from gacrystal.images import list_images
from gacrystal.monitoring.clock import exif_time
from gacrystal.synthetic import frames as synth_frames
from probe import save_grey


def test_synthetic_frames_are_deterministic_and_carry_truth_and_time(tmp_path):
    args = dict(count=3, spike_frame=2, width=400, height=320, interval=5.0, seed=9,
                progress=False)
    rows = synth_frames.generate_frames(tmp_path / "a", workers=1, **args)
    synth_frames.generate_frames(tmp_path / "b", workers=2, **args)
    names = [p.name for p in list_images(tmp_path / "a")]
    assert names == ["frame (1).png", "frame (2).png", "frame (3).png"]
    for name in names + ["truth.csv"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    truth = synth_frames.read_truth(tmp_path / "a" / "truth.csv")
    assert truth["frame (1).png"]["pg"] == []  # before the spike
    assert len(truth["frame (2).png"]["pg"]) >= 1 and truth["frame (2).png"]["spike_frame"] == 2
    for x, y, w, h in truth["frame (2).png"]["pg"]:
        assert 0 <= x and x + w <= 400 and 0 <= y and y + h <= 320
    assert {r["frame"] for r in rows} == set(names)
    second = tmp_path / "a" / "frame (2).png"
    assert exif_time(second) == synth_frames.START_TIME + dt.timedelta(seconds=5)
    assert abs(second.stat().st_mtime - (synth_frames.START_TIME.timestamp() + 5)) < 1


def test_gasynth_frames_mode_writes_frames_and_refuses_to_overwrite(tmp_path, capsys):
    import GAsynth
    out = tmp_path / "frames"
    argv = ["--frames", "2", "--spike_frame", "2", "--frame_width", "400", "--frame_height",
            "320", "--out", str(out)]
    GAsynth.main(argv)
    assert [p.name for p in list_images(out)] == ["frame (1).png", "frame (2).png"]
    next_line = capsys.readouterr().out.splitlines()[-1]
    assert f"GAmonitor.py --frames {out}" in next_line  # PG from frame 2: the baseline holds PG,
    assert "--adapt" not in next_line  # so no adapting to it
    assert GAsynth.adapt_if_pure_baseline(31) == " --adapt"  # the demo's: frames 1-30 pure CEX
    with pytest.raises(UserError, match="already holds images"):
        GAsynth.main(argv)
    save_grey(np.zeros((8, 8)), out / "mine.png")
    with pytest.raises(UserError, match="holds other images too"):
        GAsynth.main(argv + ["--overwrite"])
