"""The Monitor (gacrystal/monitoring/monitor.py): tables of frames and particles, overlays, and
a restart that adds no duplicates after a crash mid-frame or a half-written frame."""
import csv

import pytest

from gacrystal.files import append_csv, csv_cells
from gacrystal.images import list_images
from gacrystal.monitoring import CusumRule, FrameClock, Monitor, new_frames
from gacrystal.monitoring.records import FRAME_COLUMNS, PARTICLE_COLUMNS
from probe import BrightnessClassifier, spiking_frames


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval, by its formula (the Monitor's comes from scipy)."""
    share = successes / total
    middle = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * (share * (1 - share) / total + z * z / (4 * total ** 2)) ** 0.5
    return middle - half, middle + half


def test_monitor_writes_tables_and_a_restart_adds_no_duplicates(tmp_path):
    frames = tmp_path / "frames"
    spiking_frames(frames)
    out = tmp_path / "out"
    first = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2),
                    tile_size=64, min_area=2000, um_per_px=2.0, overlay_every=2)
    first.resume()
    assert first.process(list_images(frames)[:3]) == {}
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert [r["frame"] for r in rows] == ["frame (1).png", "frame (2).png", "frame (3).png"]
    assert {r["time_source"] for r in rows} == {"exif"}
    assert [float(r["elapsed_s"]) for r in rows] == [0.0, 10.0, 20.0]
    for r in rows:  # each frame's PG fraction and its 95% Wilson interval, from its counts
        pg, counted = int(r["pg"]), int(r["cex"]) + int(r["pg"])
        assert counted >= 10 and float(r["pg_fraction"]) == pytest.approx(pg / counted)
        assert (float(r["pg_fraction_low"]), float(r["pg_fraction_high"])) == pytest.approx(
            wilson(pg, counted), abs=1e-6)
    assert any(int(r["pg"]) for r in rows)  # an interval around PG found, not only around 0
    particles = list(csv.DictReader(open(out / "particles.csv")))
    assert {p["frame"] for p in particles} == {r["frame"] for r in rows}
    tile = next(p for p in particles if p["found_by"] == "tile")
    assert float(tile["area_um2"]) == pytest.approx(64 * 64 * 4.0)
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["frame (1).png", "frame (3).png"]
    # A crash between the particle rows and the frame row of frame 4: its rows must not stay.
    append_csv(out / "particles.csv", [dict(particles[0], frame="frame (4).png")], PARTICLE_COLUMNS)
    with open(out / "frames.csv", "a") as f:
        f.write("frame (4).png,2026-01-12 09:00:30,30")  # a half-written last line
    second = Monitor(BrightnessClassifier(), out, FrameClock("auto"), CusumRule(2),
                     tile_size=64, min_area=2000)
    second.resume()
    assert second.done == {r["frame"] for r in rows}
    assert [p.name for p in new_frames(frames, second)] == ["frame (4).png"]
    # Frame 4 half-written when looked at: reported, then taken once the file is whole.
    whole = (frames / "frame (4).png").read_bytes()
    (frames / "frame (4).png").write_bytes(whole[:len(whole) // 2])
    assert list(second.process(new_frames(frames, second))) == [frames / "frame (4).png"]
    assert new_frames(frames, second) == [] and second.still_unreadable() == ["frame (4).png"]
    (frames / "frame (4).png").write_bytes(whole)
    second.process(new_frames(frames, second))
    assert second.still_unreadable() == []
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert names == [f"frame ({i}).png" for i in range(1, 5)]
    particles = list(csv.DictReader(open(out / "particles.csv")))
    counts = {n: sum(p["frame"] == n for p in particles) for n in names}
    assert counts["frame (4).png"] == int(list(csv.DictReader(open(out / "frames.csv")))[-1]["candidates"])
    # What was read back is what was written: the restarted run's records, typed.
    assert [csv_cells(f.row(), FRAME_COLUMNS) for f in second.frames[:3]] == [
        csv_cells(f.row(), FRAME_COLUMNS) for f in first.frames]
