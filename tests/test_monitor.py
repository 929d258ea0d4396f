"""Monitoring whole frames (GAmonitor.py): synthetic frames with truth, candidates, counting, the
Wilson interval, the onset alarm, frame times, watching a folder, resuming, and the script.

Most tests use a stand-in classifier (P(PG) from a crop's brightness) so that they test the
monitoring, not a network; one runs the script end to end on the session's tiny trained model."""
import csv
import datetime as dt
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gacrystal import candidates as cand
from gacrystal import frames as synth_frames
from gacrystal import monitor as m
from gacrystal.errors import UserError
from gacrystal.images import list_images


class BrightnessClassifier:
    """Stands in for a model: a crop whose middle is bright is PG (an agglomerate fills the
    middle of a PG crop), else CEX; counts the crops it was asked about."""

    card = {"image_size": 32, "crop_size": 64}

    def __init__(self):
        self.crops = 0

    def label(self, crops, batch_size=32, threshold=0.5, reject=True):
        self.crops += len(crops)
        records = []
        for crop in crops:
            pixels = np.asarray(crop, np.float32)
            h, w = pixels.shape[:2]
            middle = pixels[h // 3:2 * h // 3, w // 3:2 * w // 3].mean() / 255
            p = float(np.clip((middle - 0.62) * 5 + 0.5, 0, 1))
            label = "PG" if p >= threshold else "CEX"
            records.append({"label": label, "p_pg": p, "confidence": max(p, 1 - p),
                            "ood_score": 0.2})
        return records


def save_grey(pixels, path):
    Image.fromarray(np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[:, :, None], 3, 2)).save(path)


def textured_frame(height=360, width=480, seed=0):
    """Needle-like texture: grey noise with thin bright lines, no blobs."""
    rng = np.random.default_rng(seed)
    frame = 60 + 12 * rng.normal(size=(height, width))
    for _ in range(30):
        x, y, angle = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0, np.pi)
        for t in np.linspace(-60, 60, 240):
            xi, yi = int(x + t * np.cos(angle)), int(y + t * np.sin(angle))
            if 0 <= xi < width and 0 <= yi < height:
                frame[yi, max(xi - 1, 0):xi + 2] = 170  # 3 px wide: a needle
    return frame


def add_disc(frame, cx, cy, radius, value=235.0, blur=0.0, rng=None):
    from scipy.ndimage import gaussian_filter
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    disc = (np.hypot(xs - cx, ys - cy) < radius).astype(np.float32)
    if blur:
        disc = gaussian_filter(disc, blur)
    grain = 0 if rng is None else 25 * rng.normal(size=frame.shape)  # granules: in focus
    return frame * (1 - disc) + (value + grain) * disc


# ---- synthetic frames ------------------------------------------------------------------------

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
    assert m.exif_time(second) == synth_frames.START_TIME + dt.timedelta(seconds=5)
    assert abs(second.stat().st_mtime - (synth_frames.START_TIME.timestamp() + 5)) < 1


def test_gasynth_frames_mode_writes_frames_and_refuses_to_overwrite(tmp_path, capsys):
    import GAsynth
    out = tmp_path / "frames"
    argv = ["--frames", "2", "--spike_frame", "2", "--frame_width", "400", "--frame_height",
            "320", "--out", str(out)]
    GAsynth.main(argv)
    assert [p.name for p in list_images(out)] == ["frame (1).png", "frame (2).png"]
    assert "GAmonitor.py --frames" in capsys.readouterr().out
    with pytest.raises(UserError, match="already holds images"):
        GAsynth.main(argv)
    save_grey(np.zeros((8, 8)), out / "mine.png")
    with pytest.raises(UserError, match="holds other images too"):
        GAsynth.main(argv + ["--overwrite"])


# ---- candidates ------------------------------------------------------------------------------

def test_blobs_are_found_needles_are_not_and_edges_and_blur_are_handled():
    rng = np.random.default_rng(1)
    frame = textured_frame(seed=1)
    frame = add_disc(frame, 150, 180, 45, rng=rng)               # an agglomerate, in focus
    frame = add_disc(frame, 470, 60, 45, rng=rng)                # one cut by the right edge
    frame = add_disc(frame, 340, 200, 45, value=200, blur=12)     # out of focus
    blobs = cand.find_blobs(frame, min_area=2000)
    inside = [b for b in blobs if b.covers(150, 180)]
    assert len(inside) == 1 and inside[0].in_focus
    assert inside[0].w >= cand.PG_CROP_MIN and inside[0].diameter_px == pytest.approx(90, rel=0.3)
    assert not any(b.covers(470, 60) for b in blobs)             # touches the edge: left out
    blurred = [b for b in blobs if b.covers(340, 200)]
    assert blurred and not blurred[0].in_focus
    assert len(blobs) == 2                                       # the needles made none


def test_tiles_cover_the_frame_and_skip_flat_areas():
    frame = textured_frame(height=300, width=500)
    frame[:150, :150] = 80.0  # a flat corner: nothing to see
    tiles = cand.tile_grid(frame, 100)
    assert len(tiles) == 3 * 5 - 1
    assert all(t.w == t.h == 100 for t in tiles)
    assert not any(t.covers(10, 10) for t in tiles)


def test_tiles_overlapping_a_counted_blob_and_cex_blobs_are_not_counted():
    blob = cand.Candidate(100, 100, 150, 150, "blob", 9000.0, 107.0)
    near = cand.Candidate(200, 200, 151, 151, "tile", 151.0 ** 2)
    far = cand.Candidate(400, 0, 151, 151, "tile", 151.0 ** 2)
    assert m.count_regions([blob, near, far], ["PG", "CEX", "CEX"]) == [
        (True, ""), (False, "overlaps a counted blob"), (True, "")]
    verdicts = m.count_regions([blob, near], ["CEX", "CEX"])  # a CEX blob: its tiles count
    assert verdicts[0][0] is False and verdicts[1] == (True, "")


# ---- numbers ---------------------------------------------------------------------------------

def test_wilson_interval_matches_the_formula():
    def wilson(k, n, z=1.959964):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return centre - half, centre + half
    for k, n in ((0, 10), (3, 40), (40, 40)):
        assert m.wilson_interval(k, n) == pytest.approx(wilson(k, n), abs=1e-6)
    assert m.wilson_interval(0, 0) == (None, None)


def test_alarm_ignores_noise_and_odd_frames_and_fires_soon_after_a_rise():
    rng = np.random.default_rng(0)
    quiet = m.OnsetAlarm(baseline_frames=10)
    noise = rng.poisson(0.4, 300)
    noise[100] = 9  # one frame full of false PG
    noise[200:202] = 9  # two in a row
    assert not any(quiet.update(int(c)) for c in noise)
    assert quiet.cusum < quiet.threshold
    rising = m.OnsetAlarm(baseline_frames=10)
    counts = list(rng.poisson(0.4, 30)) + [4] * 10
    fired = [i for i, c in enumerate(counts) if rising.update(int(c))]
    assert fired and 30 <= fired[0] <= 32 and rising.fired_at == fired[0]
    assert len(fired) == 1  # printed once


# ---- time ------------------------------------------------------------------------------------

def test_frame_times_come_from_the_chosen_source(tmp_path):
    names = ["f (2).png", "f (10).png", "f (1).png"]
    for i, name in enumerate(names):
        save_grey(np.full((8, 8), 100.0), tmp_path / name)
        os.utime(tmp_path / name, (1_700_000_000 + 7 * i, 1_700_000_000 + 7 * i))
    ordered = list_images(tmp_path)
    assert [p.name for p in ordered] == ["f (1).png", "f (2).png", "f (10).png"]  # natural order
    mtimes = [p.stat().st_mtime for p in ordered]
    order = m.FrameClock("order", interval=2.5)
    assert [order.time_of(p, i, t)[1:] for i, (p, t) in enumerate(zip(ordered, mtimes))] == [
        (0.0, "order"), (2.5, "order"), (5.0, "order")]
    mtime = m.FrameClock("auto")  # no EXIF in these files: their modification times
    assert [mtime.time_of(p, i, t)[1:] for i, (p, t) in enumerate(zip(ordered, mtimes))] == [
        (0.0, "mtime"), (-14.0, "mtime"), (-7.0, "mtime")]
    table = tmp_path / "times.csv"
    table.write_text("frame,time\nf (1).png,2026-03-01 14:32:05\nf (2).png,2026-03-01 14:32:35\n")
    times = m.FrameClock("auto", table)
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
        m.read_times(bad)


# ---- the monitor: tables, resuming, watching --------------------------------------------------

def spiking_frames(folder: Path, count=4, spike=3, seed=5) -> dict:
    rows = synth_frames.generate_frames(folder, count, spike, width=480, height=360, seed=seed,
                                        progress=False, workers=1)
    return rows


def draw_bright_discs(rng, width, height, pg_count):
    """A needle field with `pg_count` bright granular discs: what the stand-in classifiers call
    PG, whatever the synthetic generator draws (gacrystal.frames.write_frame's `draw`)."""
    frame = textured_frame(height, width, seed=int(rng.integers(1000)))
    objects = []
    for i in range(pg_count):
        cx, cy = 80 + i * 110, height // 2
        frame = add_disc(frame, cx, cy, 40, rng=rng)
        objects.append({"kind": "pg", "x": cx - 40, "y": cy - 40, "w": 80, "h": 80})
    return np.clip(frame, 0, 255).astype(np.uint8), objects


def disc_frames(folder: Path, count=5, spike=3) -> list[dict]:
    """Spiking frames of needles and bright discs (3 from the spike on), with EXIF times."""
    return synth_frames.generate_frames(folder, count, spike, width=480, height=360, seed=5,
                                        progress=False, workers=1, pg_first=3, pg_per_step=0,
                                        draw=draw_bright_discs)


def test_monitor_writes_tables_and_a_restart_adds_no_duplicates(tmp_path):
    frames = tmp_path / "frames"
    spiking_frames(frames)
    out = tmp_path / "out"
    first = m.Monitor(BrightnessClassifier(), out, m.FrameClock("auto"), m.OnsetAlarm(2),
                      tile_size=64, min_area=2000, um_per_px=2.0, overlay_every=2)
    first.resume()
    assert first.process(list_images(frames)[:3]) == {}
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert [r["frame"] for r in rows] == ["frame (1).png", "frame (2).png", "frame (3).png"]
    assert {r["time_source"] for r in rows} == {"exif"}
    assert [float(r["elapsed_s"]) for r in rows] == [0.0, 10.0, 20.0]
    for r in rows:
        counted = int(r["cex"]) + int(r["pg"])
        if counted:
            assert float(r["pg_fraction_low"]) <= float(r["pg_fraction"]) <= float(r["pg_fraction_high"])
    particles = list(csv.DictReader(open(out / "particles.csv")))
    assert {p["frame"] for p in particles} == {r["frame"] for r in rows}
    tile = next(p for p in particles if p["found_by"] == "tile")
    assert float(tile["area_um2"]) == pytest.approx(64 * 64 * 4.0)
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["frame (1).png", "frame (3).png"]
    # A crash between the particle rows and the frame row of frame 4: its rows must not stay.
    m.append_rows(out / "particles.csv", [dict(particles[0], frame="frame (4).png")],
                  m.PARTICLE_COLUMNS)
    with open(out / "frames.csv", "a") as f:
        f.write("frame (4).png,2026-01-12 09:00:30,30")  # a half-written last line
    second = m.Monitor(BrightnessClassifier(), out, m.FrameClock("auto"), m.OnsetAlarm(2),
                       tile_size=64, min_area=2000)
    second.resume()
    assert second.done == {r["frame"] for r in rows}
    assert [p.name for p in m.new_frames(frames, second)] == ["frame (4).png"]
    # Frame 4 half-written when looked at: reported, then taken once the file is whole.
    whole = (frames / "frame (4).png").read_bytes()
    (frames / "frame (4).png").write_bytes(whole[:len(whole) // 2])
    assert list(second.process(m.new_frames(frames, second))) == [frames / "frame (4).png"]
    assert m.new_frames(frames, second) == [] and second.still_unreadable() == ["frame (4).png"]
    (frames / "frame (4).png").write_bytes(whole)
    second.process(m.new_frames(frames, second))
    assert second.still_unreadable() == []
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert names == [f"frame ({i}).png" for i in range(1, 5)]
    particles = list(csv.DictReader(open(out / "particles.csv")))
    counts = {n: sum(p["frame"] == n for p in particles) for n in names}
    assert counts["frame (4).png"] == int(list(csv.DictReader(open(out / "frames.csv")))[-1]["candidates"])


def test_watch_takes_each_good_frame_once_reports_bad_ones_and_resumes(tmp_path):
    source, folder, out = tmp_path / "source", tmp_path / "probe", tmp_path / "out"
    spiking_frames(source, count=5, spike=3)
    folder.mkdir()
    good = [p.name for p in list_images(source)]

    def probe():  # writes frames the way a camera might: some in two parts, one corrupt
        for i, name in enumerate(good):
            data = (source / name).read_bytes()
            target = folder / name
            if i % 2:
                target.write_bytes(data[:len(data) // 3])
                time.sleep(0.25)
                with open(target, "ab") as f:
                    f.write(data[len(data) // 3:])
            else:
                target.write_bytes(data)
            time.sleep(0.1)
        (folder / "frame (99).png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    writer = threading.Thread(target=probe)
    writer.start()
    run = m.Monitor(BrightnessClassifier(), out, m.FrameClock("auto"), m.OnsetAlarm(2),
                    tile_size=64, min_area=2000, overlay_every=0)
    run.resume()
    # retries x poll_s = 1 s: longer than the writer's 0.25 s pause inside a frame
    m.watch(run, folder, poll_s=0.1, retries=10, frames_per_batch=2, stop_after_idle=1.5)
    writer.join()
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert sorted(names) == sorted(good) and len(names) == len(set(names))
    assert list(run.unreadable) == ["frame (99).png"]
    assert [r["frame"] for r in csv.DictReader(open(out / "unreadable.csv"))] == ["frame (99).png"]
    # A restarted watcher finds nothing new and adds nothing; a new frame is taken.
    (folder / "frame (6).png").write_bytes((source / "frame (1).png").read_bytes())
    again = m.Monitor(BrightnessClassifier(), out, m.FrameClock("auto"), m.OnsetAlarm(2),
                      tile_size=64, min_area=2000, overlay_every=0)
    again.resume()
    m.watch(again, folder, poll_s=0.1, retries=10, frames_per_batch=2, stop_after_idle=0.5)
    names = [r["frame"] for r in csv.DictReader(open(out / "frames.csv"))]
    assert sorted(names) == sorted(good + ["frame (6).png"])
    assert [r["frame"] for r in csv.DictReader(open(out / "unreadable.csv"))] == ["frame (99).png"]


def test_pictures_and_page_show_the_run(tmp_path):
    from gacrystal.monitor_report import plot_trend, write_page
    frames = tmp_path / "frames"
    spiking_frames(frames, count=3, spike=2)
    run = m.Monitor(BrightnessClassifier(), tmp_path / "out", m.FrameClock("auto"),
                    m.OnsetAlarm(1, threshold=0.5), tile_size=64, min_area=2000, overlay_every=1)
    run.process(list_images(frames))
    plot_trend(run.frames, 0.5, run.out / "trend.png")
    page = write_page(run.out, run.frames, {"min_area": 2000}, "No alarm.", frames,
                      run.out / m.OVERLAYS, m.FRAME_COLUMNS, run.picks).read_text()
    assert Image.open(run.out / "trend.png").size[0] > 500
    assert page.count('alt="overlay"') == 3 and "data:image/png;base64," in page
    assert "frame (3).png" in page and "min_area" in page
    highest, uncertain = run.picks.rows()
    assert page.count('alt="crop"') == len(highest) + len(uncertain) > 0
    assert all(r["label"] == "PG" for r in highest)
    assert [float(r["p_pg"]) for r in highest] == sorted((float(r["p_pg"]) for r in highest), reverse=True)


# ---- the script ------------------------------------------------------------------------------

def test_script_errors_say_what_to_do(tmp_path):
    import GAmonitor
    with pytest.raises(UserError, match="no frame folder .*--demo"):
        GAmonitor.main(["--frames", str(tmp_path / "none")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="add --watch"):
        GAmonitor.main(["--frames", str(tmp_path / "empty")])
    save_grey(np.zeros((8, 8)), tmp_path / "empty" / "a.png")
    with pytest.raises(UserError, match="no model file .*GAmain.py --demo"):
        GAmonitor.main(["--frames", str(tmp_path / "empty"), "--weights", str(tmp_path / "x.keras")])
    with pytest.raises(UserError, match="time_source must be one of"):
        GAmonitor.main(["--frames", str(tmp_path / "empty"), "--time_source", "clock"])
    with pytest.raises(UserError, match="min_area must be at least 1"):
        GAmonitor.main(["--frames", str(tmp_path / "empty"), "--min_area", "0"])


class StandIn(BrightnessClassifier):
    can_reject = True


def test_script_exits_3_after_an_alarm_prints_it_once_and_goes_on_after_a_restart(
        tmp_path, capsys, monkeypatch):
    import GAmonitor
    from gacrystal import classifier
    monkeypatch.setattr(classifier, "load_classifier", lambda path: StandIn())
    frames, out = tmp_path / "frames", tmp_path / "out"
    disc_frames(frames, count=5, spike=3)
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"stand-in")
    argv = ["--frames", str(frames), "--weights", str(weights), "--out", str(out),
            "--baseline_frames", "2", "--alarm_threshold", "1", "--overlay_every", "2",
            "--min_area", "2000"]
    assert GAmonitor.main(argv) == m.ALARM_EXIT_STATUS
    text = capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert len(rows) == 5 and (out / "trend.png").is_file() and (out / "monitor.html").is_file()
    fired = [r["frame"] for r in rows if r["event"] == "alarm"]
    assert len(fired) == 1 and fired[0] in ("frame (3).png", "frame (4).png", "frame (5).png")
    assert text.count("ALARM: PG has appeared") == 1
    assert (out / "overlays" / fired[0]).is_file()
    # A second run goes on: nothing new, the same verdict from the replayed alarm.
    assert GAmonitor.main(argv) == m.ALARM_EXIT_STATUS
    text = capsys.readouterr().out
    assert "5 frames already done" in text and f"ALARM: PG has appeared at {fired[0]}" in text
    assert len(list(csv.DictReader(open(out / "frames.csv")))) == 5
    with pytest.raises(UserError, match="takes its times from exif, not order"):
        GAmonitor.main(argv + ["--interval", "5"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "frame (1).png").write_bytes((frames / "frame (1).png").read_bytes())
    with pytest.raises(UserError, match="holds a run on other frames"):
        GAmonitor.main(["--frames", str(other), *argv[2:]])


def test_script_runs_a_trained_model_end_to_end(runs, tmp_path):
    import GAmonitor
    frames, out = tmp_path / "frames", tmp_path / "out"
    spiking_frames(frames, count=3, spike=2)
    status = GAmonitor.main(["--frames", str(frames), "--weights", str(runs["a"] / "model.onnx"),
                             "--out", str(out), "--min_area", "2000"])
    assert status in (0, m.ALARM_EXIT_STATUS)
    rows = list(csv.DictReader(open(out / "frames.csv")))
    particles = list(csv.DictReader(open(out / "particles.csv")))
    assert [r["frame"] for r in rows] == ["frame (1).png", "frame (2).png", "frame (3).png"]
    assert {p["label"] for p in particles} <= {"CEX", "PG", "UNKNOWN"}
    tiles = [p for p in particles if p["found_by"] == "tile"]
    assert tiles and {int(p["w"]) for p in tiles} == {48}  # the card's crop_size (48 px crops)
    assert all(p["ood_score"] for p in particles if p["note"] != "out of focus")
