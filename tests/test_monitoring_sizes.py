"""Size distributions (gacrystal/monitoring/sizes.py): D10/D50/D90 number- and area-weighted as
ISO 9276-2 defines them, the rolling window, µm, and in the monitor the sizes of particles whose
size is known."""
import csv

import numpy as np
import pytest

from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor
from gacrystal.monitoring.sizes import SizeWindow, distribution, weighted_quantiles
from probe import BrightnessClassifier, disc_frames


def test_quantiles_of_known_distributions():
    assert weighted_quantiles([], []) == [None, None, None]
    assert weighted_quantiles([5.0], [1.0]) == [5.0, 5.0, 5.0]
    d = np.arange(1, 100, dtype=float)  # 99 evenly spread diameters
    d10, d50, d90 = distribution(d)["number"]
    assert (d10, d50, d90) == pytest.approx((10.4, 50, 89.6), abs=0.6)
    # area-weighted: the big particles weigh more, so every D moves up
    a10, a50, a90 = distribution(d)["area"]
    assert a10 > d10 and a50 > d50 and a90 > d90
    assert a50 == pytest.approx(100 * 0.5 ** (1 / 3), abs=1.5)  # the cube-root law of q2 on a line
    # one large particle among small ones: the median number size ignores it, the area one not
    mixed = [10.0] * 9 + [100.0]
    assert distribution(mixed)["number"][1] == 10 and distribution(mixed)["area"][1] > 90


class Particle:
    def __init__(self, label, diameter, counted=True):
        self.label, self.diameter_px, self.counted = label, diameter, counted


def test_the_window_pools_the_last_frames_and_gives_um():
    window = SizeWindow(window_frames=2, um_per_px=1.5)
    window.add("f1", 0.0, [Particle("PG", 100.0), Particle("CEX", None)])
    window.add("f2", 10.0, [Particle("PG", 120.0), Particle("PG", 999.0, counted=False)])
    rows = window.add("f3", 20.0, [Particle("PG", 140.0), Particle("UNKNOWN", 60.0)])
    assert window.d50("PG") == (130.0, 195.0)  # f2 and f3: 120 and 140 (f1 left the window)
    pg_window = next(r for r in rows if r["label"] == "PG" and r["scope"] == "window"
                     and r["weighting"] == "number")
    assert pg_window["count"] == 2 and pg_window["d50_px"] == 130 and pg_window["d50_um"] == 195
    cex = [r for r in rows if r["label"] == "CEX"]
    assert all(r["d50_px"] is None for r in cex)  # tiles: counted, never sized
    assert SizeWindow(2).add("f", 0.0, [Particle("PG", 10.0)])[0]["d50_um"] is None  # no scale


def test_the_monitor_writes_sizes_and_the_pg_d50(tmp_path):
    frames, out = tmp_path / "frames", tmp_path / "out"
    disc_frames(frames, count=4, spike=2)  # discs of 80 px diameter from frame 2 on
    run = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2), tile_size=64,
                  min_area=2000, um_per_px=2.0, overlay_every=0, window_frames=3)
    run.process(list_images(frames))
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert rows[0]["pg_d50_px"] == ""  # no PG yet
    assert float(rows[-1]["pg_d50_px"]) == pytest.approx(80, rel=0.1)
    assert float(rows[-1]["pg_d50_um"]) == pytest.approx(2 * float(rows[-1]["pg_d50_px"]))
    sizes = list(csv.DictReader(open(out / "sizes.csv")))
    assert len(sizes) == 4 * 3 * 2 * 2  # frames x labels x (frame, window) x (number, area)
    again = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2), tile_size=64,
                    min_area=2000, um_per_px=2.0, window_frames=3)
    again.resume()  # the window goes on where it was
    assert again.sizes.d50("PG") == pytest.approx(run.sizes.d50("PG"))  # 10 digits in the CSV
