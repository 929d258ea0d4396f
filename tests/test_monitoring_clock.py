"""Frame times (gacrystal/monitoring/clock.py): the one rule that picks the source, each source,
and a clock taken up again after a restart."""
import datetime as dt
import os

import numpy as np
import pytest

from gacrystal.errors import UserError
from gacrystal.images import list_images
from gacrystal.monitoring.clock import FrameClock, read_times, wanted_source
from probe import save_grey


def test_frame_times_come_from_the_chosen_source(tmp_path):
    names = ["f (2).png", "f (10).png", "f (1).png"]
    for i, name in enumerate(names):
        save_grey(np.full((8, 8), 100.0), tmp_path / name)
        os.utime(tmp_path / name, (1_700_000_000 + 7 * i, 1_700_000_000 + 7 * i))
    ordered = list_images(tmp_path)
    assert [p.name for p in ordered] == ["f (1).png", "f (2).png", "f (10).png"]  # natural order
    mtimes = [p.stat().st_mtime for p in ordered]
    order = FrameClock("order", interval=2.5)
    assert [order.time_of(p, i, t)[1:] for i, (p, t) in enumerate(zip(ordered, mtimes))] == [
        (0.0, "order"), (2.5, "order"), (5.0, "order")]
    mtime = FrameClock("auto")  # no EXIF in these files: their modification times
    assert [mtime.time_of(p, i, t)[1:] for i, (p, t) in enumerate(zip(ordered, mtimes))] == [
        (0.0, "mtime"), (-14.0, "mtime"), (-7.0, "mtime")]
    table = tmp_path / "times.csv"
    table.write_text("frame,time\nf (1).png,2026-03-01 14:32:05\nf (2).png,2026-03-01 14:32:35\n")
    times = FrameClock("auto", table)
    assert times.time_of(ordered[0], 0, mtimes[0])[0] == dt.datetime(2026, 3, 1, 14, 32, 5)
    assert times.time_of(ordered[1], 1, mtimes[1])[1:] == (30.0, "times")
    # Not in the table (yet): the file's time, and the row says so; the table is read again
    # once it changes.
    assert times.time_of(ordered[2], 2, mtimes[2])[2] == "mtime"
    with open(table, "a") as f:
        f.write("f (10).png,2026-03-01 14:33:05\n")
    os.utime(table, (1_800_000_000, 1_800_000_000))
    assert times.time_of(ordered[2], 2, mtimes[2])[1:] == (60.0, "times")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,when\n")
    with pytest.raises(UserError, match="columns frame and time"):
        read_times(bad)


def test_the_settings_ask_for_one_source():
    assert wanted_source("auto", "") == "auto"  # settled by the first frame: EXIF, else mtime
    assert wanted_source("auto", "times.csv") == "times"
    assert wanted_source("auto", "", interval_typed=True) == "order"
    assert wanted_source("auto", "times.csv", interval_typed=True) == "times"
    for source in ("times", "exif", "mtime", "order"):
        assert wanted_source(source, "times.csv", interval_typed=True) == source
    assert FrameClock("auto", "times.csv").source == "times"


def test_a_restarted_clock_goes_on_from_its_state_else_from_the_first_frame(tmp_path):
    frame = tmp_path / "f (1).png"
    save_grey(np.full((8, 8), 100.0), frame)
    first = FrameClock("auto")
    when, _, source = first.time_of(frame, 0, 1_700_000_000.0)
    assert first.state() == {"time_source": "mtime", "start": when.isoformat()}
    again = FrameClock("auto")
    again.restore(first.state(), first_source=None, first_time=None)
    assert (again.chosen, again.start) == ("mtime", when)
    assert again.time_of(frame, 1, 1_700_000_060.0)[1:] == (60.0, "mtime")
    # A crash before monitor.json held the clock: the run's first row says where it stood.
    crashed = FrameClock("auto")
    crashed.restore({"time_source": None, "start": None}, "exif", dt.datetime(2026, 1, 1))
    assert (crashed.chosen, crashed.start) == ("exif", dt.datetime(2026, 1, 1))
