"""Frames made of real crops (gacrystal.synthetic.mosaic, GAsynth.py --frames N --from_crops DIR):
the PG crops sit where truth.csv says, the schedule is exact, a seed gives the same bytes on any
number of processes, and the script names what it needs. The crops are made here (any crops will
do)."""
import csv
import hashlib

import numpy as np
import pytest
from PIL import Image

import GAsynth
from gacrystal.errors import UserError
from gacrystal.synthetic import mosaic
from gacrystal.synthetic.frames import generate_frames


def write_crops(folder, rng):
    """Three CEX crops (151 px, grain around three different grey levels, so that an unblended
    seam is a step) and two PG crops (130-160 px, a bright disc in the middle) in cex/ and pg/."""
    for sub, count in (("cex", 3), ("pg", 2)):
        (folder / sub).mkdir(parents=True)
        for i in range(count):
            if sub == "cex":
                pixels = rng.normal(60 + 30 * i, 4, (151, 151))
            else:
                h, w = int(rng.integers(130, 161)), int(rng.integers(130, 161))
                ys, xs = np.mgrid[0:h, 0:w]
                pixels = rng.normal(90, 30, (h, w))
                pixels[np.hypot(xs - w / 2, ys - h / 2) < 0.35 * min(h, w)] = 250
            grey = np.clip(pixels, 0, 255).astype(np.uint8)
            Image.fromarray(grey).convert("RGB").save(folder / sub / f"{sub.upper()} ({i + 1}).png")
    return folder


@pytest.fixture
def crops(tmp_path):
    return write_crops(tmp_path / "crops", np.random.default_rng(0))


def test_pg_crops_sit_where_the_truth_says_and_the_schedule_is_exact(tmp_path, crops):
    draw = mosaic.MosaicDrawer.from_folder(crops)
    rows = generate_frames(tmp_path / "frames", 9, 3, width=800, height=640, step_every=3,
                           pg_first=1, pg_per_step=1, draw=draw, progress=False, workers=1)
    per_frame = {}
    for row in rows:
        per_frame.setdefault(row["frame"], []).append(row)
    counts = [sum(r["kind"] == "pg" for r in per_frame[f"frame ({n}).png"]) for n in range(1, 10)]
    assert counts == [0, 0, 1, 1, 1, 2, 2, 2, 3]  # 1 at the spike, one more every 3 frames
    for row in rows:
        if row["kind"] != "pg":
            continue
        grey = np.asarray(Image.open(tmp_path / "frames" / row["frame"]).convert("L"), float)
        x, y, w, h = row["x"], row["y"], row["w"], row["h"]
        centre = grey[y + h // 2 - 5:y + h // 2 + 5, x + w // 2 - 5:x + w // 2 + 5]
        assert centre.mean() > 240  # the pasted particle's bright middle, unfaded
        assert grey[max(y - 40, 0):y, x:x + w].mean() < 160  # the mosaic around it


def test_the_seams_are_blended_and_a_seed_gives_the_same_bytes_on_any_core_count(tmp_path, crops):
    draw = mosaic.MosaicDrawer.from_folder(crops)
    args = dict(count=3, spike_frame=2, width=640, height=480, seed=5, progress=False, draw=draw)
    generate_frames(tmp_path / "one", workers=1, **args)
    generate_frames(tmp_path / "two", workers=2, **args)
    for name in ("frame (1).png", "frame (3).png", "truth.csv"):
        assert (hashlib.sha256((tmp_path / "one" / name).read_bytes()).digest()
                == hashlib.sha256((tmp_path / "two" / name).read_bytes()).digest())
    canvas = mosaic.cex_mosaic(np.random.default_rng(1), draw.cex, 640, 480)
    assert canvas.shape == (480, 640) and 0 <= canvas.min() and canvas.max() <= 255
    # no step where crops of different grey levels meet: at most a ramp over the overlap
    steps = np.abs(np.diff(canvas, axis=1))
    assert steps.max() < 30 / mosaic.OVERLAP * 2 + 8 * 4  # the levels' ramp plus the grain


def test_the_script_writes_mosaic_frames_and_names_what_it_needs(tmp_path, crops, capsys):
    out = tmp_path / "frames"
    GAsynth.main(["--frames", "4", "--spike_frame", "2", "--pg_first", "1", "--pg_per_step", "0",
                  "--frame_width", "640", "--frame_height", "480", "--from_crops", str(crops),
                  "--out", str(out)])
    assert "mosaics of the crops" in capsys.readouterr().out
    with open(out / "truth.csv", newline="") as f:
        kinds = [row["kind"] for row in csv.DictReader(f)]
    assert kinds.count("pg") == 3
    (tmp_path / "only_cex" / "cex").mkdir(parents=True)
    Image.new("RGB", (151, 151)).save(tmp_path / "only_cex" / "cex" / "CEX (1).png")
    with pytest.raises(UserError, match="from_crops=.*both classes"):
        GAsynth.main(["--frames", "2", "--from_crops", str(tmp_path / "only_cex"),
                      "--out", str(tmp_path / "x")])
    with pytest.raises(UserError, match="pg_first"):
        GAsynth.main(["--frames", "2", "--pg_first", "0", "--out", str(tmp_path / "y")])
