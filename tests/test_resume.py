"""Training survives Ctrl-C and SIGKILL (--resume), stops cleanly on NaN, writes files atomically."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY

import GAmain
from gacrystal.cli import run_main

pytestmark = pytest.mark.training  # every test here trains


def start_training(args):
    """GAmain.py in a child process (so that it can be interrupted and killed). The child gets
    the default Ctrl-C behaviour even where the tests run in the background of a shell, which
    ignores SIGINT for its background jobs (and the child would inherit that)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, str(ROOT / "GAmain.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_backup(process, runs_dir, epochs, timeout=240):
    """The run folder, once its backup holds at least `epochs` completed epochs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for metadata in runs_dir.glob("*/backup/training_metadata.json"):
            try:
                if json.loads(metadata.read_text())["epoch"] >= epochs:
                    return metadata.parents[1]
            except (ValueError, KeyError):  # being written
                pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no backup in time")


def history_column(run_dir, name):
    header, *lines = (run_dir / "history.csv").read_text().splitlines()
    return [float(line.split(",")[header.split(",").index(name)]) for line in lines]


def backed_up(run_dir):
    return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]


def test_ctrl_c_then_kill_then_resume_finishes_the_run(split_dir, tmp_path, runs):
    runs_dir = tmp_path / "runs"
    # The F1 rule off (above 1) and five epochs: when the first backup appears, the child has
    # four epochs to go, so the signal always finds it training (with the rule on, a tiny run
    # could meet it and exit 0 before the signal arrived).
    args = ["--data", str(split_dir), "--runs", str(runs_dir), "--epochs", "5",
            "--no-export_onnx", *TINY, "--f1_stop", "2"]
    first = start_training(args)
    run_dir = wait_for_backup(first, runs_dir, 1)
    assert first.poll() is None  # still training: the interruption below is certain
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130
    assert f"--resume {run_dir}" in err  # Ctrl-C says how to go on

    second = start_training(["--resume", str(run_dir)])
    wait_for_backup(second, runs_dir, backed_up(run_dir) + 1)
    second.kill()  # SIGKILL: no chance to clean up
    second.wait()
    assert json.loads((run_dir / "config.json").read_text())["training"]["status"] == "running"
    assert not (run_dir / "model.keras").exists()

    assert run_main(GAmain.main, ["--resume", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert history_column(run_dir, "epoch") == [0, 1, 2, 3, 4]  # each epoch once, in order
    assert config["training"]["epochs_run"] == 5 and config["training"]["resumed"]
    assert config["settings"]["epochs"] == 5 and config["settings"]["image_size"] == 32
    assert config["training"]["stopped_by"] == "epoch limit (5)"
    assert not (run_dir / "backup").exists()  # removed once everything was written
    # An uninterrupted run with the same settings: the same files and, epoch by epoch, the same
    # numbers (the shuffle, augmentation and dropout streams resume where they were).
    GAmain.main(args[:3] + [str(tmp_path / "straight")] + args[4:])
    straight = next((tmp_path / "straight").iterdir())
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in straight.iterdir())
    for column in ("loss", "val_loss", "val_f1_macro"):
        assert history_column(run_dir, column) == pytest.approx(
            history_column(straight, column), rel=1e-4, abs=1e-6), column
    assert config["test"] == pytest.approx(
        json.loads((straight / "config.json").read_text())["test"], rel=1e-4, abs=1e-6)


def test_resume_refuses_a_finished_run_and_new_settings(runs, capsys):
    assert run_main(GAmain.main, ["--resume", str(runs["b"])]) == 2
    assert "has finished" in capsys.readouterr().err
    assert run_main(GAmain.main, ["--resume", str(runs["b"].parent)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_nan_loss_stops_with_the_likely_cause_and_keeps_the_last_good_epoch(split_dir, tmp_path,
                                                                             capsys):
    code = run_main(GAmain.main, [
        "--data", str(split_dir), "--runs", str(tmp_path), "--epochs", "3", "--no-export_onnx",
        "--weights", "none", "--image_size", "32", "--batch_size", "16", "--lr", "10",
        "--backbone", "ResNet50"])
    err = capsys.readouterr().err
    assert code == 2
    assert "NaN" in err and "lr=10" in err and "scratch" in err and "--lr 1" in err
    run_dir = next(tmp_path.iterdir())
    assert not (run_dir / "model.keras").exists()
    if (run_dir / "backup" / "training_metadata.json").exists():  # a good epoch came first
        assert f"(epoch {backed_up(run_dir)})" in err
    else:
        assert "nothing to keep" in err


def test_a_crash_while_writing_a_model_leaves_no_file_that_looks_complete(split_dir, tmp_path,
                                                                          monkeypatch):
    from gacrystal import onnx_io

    def crashing_export(model, path, card=None):
        open(path, "wb").write(b"half an ONNX file")
        raise OSError("disk full")
    monkeypatch.setattr(onnx_io, "export_onnx", crashing_export)
    with pytest.raises(OSError):
        GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--epochs", "1", *TINY])
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    names = {p.name for p in run_dir.iterdir()}
    assert {"model.keras", "model.h5"} <= names and "model.onnx" not in names
    assert not [n for n in names if "partial" in n]
    assert (run_dir / "backup" / "trained.json").exists()  # --resume can still deliver


@pytest.mark.training
def test_a_backup_from_before_the_folding_resumes_unfolded(split_dir, tmp_path, monkeypatch,
                                                           capsys):
    """A run backed up by the code before gacrystal.training.folding (its weights in the
    unfolded network's layout, no network.json) continues, unfolded, to the end."""
    from gacrystal.training import callbacks, folding, runs
    monkeypatch.setattr(folding, "folded_for_training", lambda model: (model, 0))
    save = callbacks.BackupEachEpoch.on_epoch_end

    def backed_up_then_stopped(self, epoch, logs=None):
        save(self, epoch, logs)
        (Path(self.backup_dir) / runs.NETWORK).unlink()  # as the earlier code wrote it
        raise KeyboardInterrupt
    monkeypatch.setattr(callbacks.BackupEachEpoch, "on_epoch_end", backed_up_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--epochs", "2",
                     "--no-export_onnx", *TINY])
    monkeypatch.undo()
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert not runs.backup_is_folded(run_dir)
    GAmain.main(["--resume", str(run_dir)])
    assert "continues unfolded" in capsys.readouterr().out
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["status"] == "finished" and config["training"]["epochs_run"] == 2
    assert runs.backup_is_folded(None)  # a new run folds
