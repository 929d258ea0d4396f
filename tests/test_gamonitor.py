"""The monitoring script (GAmonitor.py): errors that say what to do, the alarm's exit status and
a restart, weights by name as GAinfer.py takes them, an output folder of another version, and one
run end to end on the session's tiny trained model."""
import csv
import dataclasses
import json
import os

import numpy as np
import pytest

from gacrystal import named_weights
from gacrystal.errors import UserError
from gacrystal.monitoring.alarm import ALARM_EXIT_STATUS
from probe import StandIn, disc_frames, save_grey, spiking_frames


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


def stand_in_model(monkeypatch) -> list:
    """GAmonitor loads StandIn instead of a model; returns the paths it was asked to load."""
    from gacrystal import classifier
    loaded = []
    monkeypatch.setattr(classifier, "load_classifier",
                        lambda path, engine="auto": loaded.append(path) or StandIn())
    return loaded


def stand_in_run(tmp_path, monkeypatch, count: int, spike: int) -> tuple:
    """Disc frames, a stand-in model file (loaded as StandIn): (frames, out, GAmonitor's argv)."""
    stand_in_model(monkeypatch)
    frames, out = tmp_path / "frames", tmp_path / "out"
    disc_frames(frames, count=count, spike=spike)
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"stand-in")
    return frames, out, ["--frames", str(frames), "--weights", str(weights), "--out", str(out),
                         "--min_area", "2000"]


def test_script_exits_3_after_an_alarm_prints_it_once_and_goes_on_after_a_restart(
        tmp_path, capsys, monkeypatch):
    import GAmonitor
    frames, out, argv = stand_in_run(tmp_path, monkeypatch, count=5, spike=3)
    argv += ["--baseline_frames", "2", "--alarm_threshold", "1", "--overlay_every", "2"]
    assert GAmonitor.main(argv) == ALARM_EXIT_STATUS
    text = capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "frames.csv")))
    assert len(rows) == 5 and (out / "trend.png").is_file() and (out / "monitor.html").is_file()
    fired = [r["frame"] for r in rows if r["event"] == "alarm"]
    assert len(fired) == 1 and fired[0] in ("frame (3).png", "frame (4).png", "frame (5).png")
    assert text.count("ALARM: PG has appeared") == 1
    assert (out / "overlays" / fired[0]).is_file()
    # A second run goes on: nothing new, the same verdict from the replayed alarm.
    assert GAmonitor.main(argv) == ALARM_EXIT_STATUS
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


def published_stand_in(cache, monkeypatch, name="georgia"):
    """A stand-in for the published file, already in Keras's cache (so nothing is downloaded):
    a Keras .h5 model config with the published input, checked as the download would be."""
    import h5py
    monkeypatch.setenv("KERAS_HOME", str(cache))
    entry = dataclasses.replace(named_weights.NAMED_WEIGHTS[name], min_mb=0.0)
    monkeypatch.setitem(named_weights.NAMED_WEIGHTS, name, entry)
    path = named_weights.cache_path(entry)
    path.parent.mkdir(parents=True)
    config = {"config": {"layers": [{"class_name": "InputLayer",
                                     "config": {"batch_shape": [None, 224, 224, 3]}}]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
    return path


def test_a_model_trained_on_synthetic_crops_gets_one_note(tmp_path, monkeypatch, capsys):
    import GAmonitor
    _, out, argv = stand_in_run(tmp_path, monkeypatch, count=2, spike=2)
    GAmonitor.main(argv)
    assert "synthetic crops only" not in capsys.readouterr().out  # a model of unknown origin
    monkeypatch.setattr(StandIn, "card", dict(StandIn.card, trained_on="synthetic"))
    GAmonitor.main(argv + ["--out", str(tmp_path / "again")])
    assert capsys.readouterr().out.count("trained on synthetic crops only") == 1


def test_the_summary_says_when_the_baseline_is_not_learnt_and_file_times_are_doubted(
        tmp_path, monkeypatch, capsys):
    import GAmonitor
    frames, _, argv = stand_in_run(tmp_path, monkeypatch, count=3, spike=3)
    assert GAmonitor.main(argv) == 0
    text = capsys.readouterr().out
    assert "baseline is not learnt yet (3 of 10 good frames)" in text
    assert "has not risen above its baseline" not in text
    # Frames copied together, read by their file times: the alarm does not believe them.
    for i, frame in enumerate(sorted(frames.glob("*.png"))):
        os.utime(frame, (1.8e9 + 0.068 * i, 1.8e9 + 0.068 * i))
    argv += ["--baseline_frames", "2"]
    assert GAmonitor.main(argv + ["--time_source", "mtime", "--out", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "s apart by their times" in text and "--interval SECONDS" in text
    assert GAmonitor.main(argv + ["--out", str(tmp_path / "c")]) == 0  # EXIF times a minute apart
    assert "apart by their times" not in capsys.readouterr().out


def test_weights_by_name_resolve_as_in_gainfer(tmp_path, monkeypatch, capsys):
    import GAinfer
    import GAmonitor
    from gacrystal.classifier import model_file
    cached = published_stand_in(tmp_path / "keras", monkeypatch)
    loaded = stand_in_model(monkeypatch)
    frames, out = tmp_path / "frames", tmp_path / "out"
    disc_frames(frames, count=2, spike=2)
    assert GAmonitor.main(["--frames", str(frames), "--weights", "georgia", "--out", str(out),
                           "--min_area", "2000"]) == 0
    assert loaded == [cached] == [model_file("georgia")]  # GAinfer.py's resolution
    assert json.loads((out / "monitor.json").read_text())["weights"] == str(cached.resolve())
    assert len(list(csv.DictReader(open(out / "frames.csv")))) == 2
    # A name that is not published is refused by both scripts in the same words.
    with pytest.raises(UserError) as by_monitor:
        GAmonitor.main(["--frames", str(frames), "--weights", "georgie", "--out", str(out)])
    with pytest.raises(UserError) as by_infer:
        GAinfer.main(["--weights", "georgie", "--images", str(frames)])
    assert str(by_monitor.value) == str(by_infer.value)
    assert "no model file at weights=georgie" in str(by_monitor.value)


def test_an_output_folder_of_another_version_is_refused_until_overwritten(tmp_path, monkeypatch):
    import GAmonitor
    _, out, argv = stand_in_run(tmp_path, monkeypatch, count=2, spike=2)
    assert GAmonitor.main(argv) == 0
    header, *rows = (out / "particles.csv").read_text().splitlines()
    older = "\n".join([header.replace(",sharpness", "")] + rows) + "\n"  # an older version's
    (out / "particles.csv").write_text(older)
    with pytest.raises(UserError, match=r"particles.csv was written by another version, with "
                                        r"other columns \(missing sharpness\); pass --overwrite"):
        GAmonitor.main(argv)
    assert (out / "particles.csv").read_text() == older  # not appended to
    assert GAmonitor.main(argv + ["--overwrite"]) == 0
    assert len(list(csv.DictReader(open(out / "frames.csv")))) == 2


def test_script_runs_a_trained_model_end_to_end(runs, tmp_path):
    import GAmonitor
    frames, out = tmp_path / "frames", tmp_path / "out"
    spiking_frames(frames, count=3, spike=2)
    status = GAmonitor.main(["--frames", str(frames), "--weights", str(runs["a"] / "model.onnx"),
                             "--out", str(out), "--min_area", "2000"])
    rows = list(csv.DictReader(open(out / "frames.csv")))
    alarmed = any(r["alarm"] == "1" for r in rows)
    assert status == (ALARM_EXIT_STATUS if alarmed else 0)  # the status tells what the table says
    particles = list(csv.DictReader(open(out / "particles.csv")))
    assert [r["frame"] for r in rows] == ["frame (1).png", "frame (2).png", "frame (3).png"]
    assert {p["label"] for p in particles} <= {"CEX", "PG", "UNKNOWN"}
    tiles = [p for p in particles if p["found_by"] == "tile"]
    assert tiles and {int(p["w"]) for p in tiles} == {48}  # the card's crop_size (48 px crops)
    assert all(p["ood_score"] for p in particles if p["note"] != "out of focus")


def test_the_demo_checks_adapt_before_drawing_frames_and_draws_its_own_split(
        tmp_path, monkeypatch, capsys):
    """--demo adapts, which needs the model's training split. A newcomer with weights/ but no
    images/split-synthetic waited for 60 frames (71 s) before hearing so: now a demo model's
    split is drawn again first (as GAmain.py --demo draws it; tiny here), and any other model's
    missing split is refused before a frame is drawn."""
    import GAmonitor
    from gacrystal.dataset import demo
    from gacrystal.synthetic import frames as synth_frames
    monkeypatch.chdir(tmp_path)  # the demo's folders are relative: weights/, images/
    monkeypatch.setattr(demo, "DEMO_IMAGES_PER_CLASS", 12)
    drawn = []

    class FramesDrawn(Exception):
        """Stops the demo where it would draw its frames."""

    def draw_frames(folder, *args, **kwargs):
        drawn.append(crops_folder("images/split-synthetic", "train"))
        raise FramesDrawn
    monkeypatch.setattr(synth_frames, "generate_frames", draw_frames)
    from gacrystal.monitoring.adaptation import crops_folder
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.keras").write_bytes(b"stand-in: not loaded before the frames")
    config = {"demo": False, "settings": {"data": "images/split-mine"}}  # not a demo model
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="--adapt fits against the model's training crops: no "
                                        "CEX/ and PG/ folders in images/split-mine"):
        GAmonitor.main(["--demo"])
    assert drawn == [] and not (tmp_path / "images").exists()  # neither frames nor crops drawn
    config = {"demo": True, "settings": {"data": "images/split-synthetic"}}  # the demo's model
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(FramesDrawn):
        GAmonitor.main(["--demo"])
    split_first = (tmp_path / "images" / "split-synthetic" / "train").resolve()
    assert [None if f is None else f.resolve() for f in drawn] == [split_first]
    assert "drawing it again" in capsys.readouterr().out
    assert len(list((tmp_path / "images" / "synthetic").rglob("*.png"))) == 24
