"""Monitoring on Dask (GAmonitor.py --cluster, gacrystal/monitoring/shards.py): one process's
files from a cluster, a folder of experiment folders, a second run, a killed worker, and no Dask
without --cluster."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import GAmonitor
from gacrystal.errors import UserError
from gacrystal.monitoring import session
from conftest import ROOT
from probe import StandIn, disc_frames, save_grey, spiking_frames

TABLES = ("frames.csv", "particles.csv", "sizes.csv", "unreadable.csv", "alarm.json")
SHARDS = ["--frames_per_batch", "2", "--shard_batches", "1"]  # 2 frames a shard: several a run
ALARM = ["--baseline_frames", "2", "--alarm_threshold", "1", "--overlay_every", "2"]


def add_awkward_frames(folder, pixels_of: str):
    """What the judge decides from the frames before, and what a worker cannot read: a frame
    again (a duplicate), a black frame and a file that is not an image, between the others."""
    shutil.copyfile(folder / pixels_of, folder / pixels_of.replace(").png", "b).png"))
    save_grey(np.zeros((360, 480)), folder / "frame (3b).png")
    (folder / "frame (4b).png").write_bytes(b"not an image")


def outputs(out) -> dict:
    """Every table and overlay a run wrote into out, by name."""
    files = [out / name for name in TABLES if (out / name).is_file()]
    files += sorted((out / "overlays").iterdir()) if (out / "overlays").is_dir() else []
    return {f.relative_to(out).as_posix(): f.read_bytes() for f in files}


def monitor(frames, out, weights, *extra) -> int:
    return GAmonitor.main(["--frames", str(frames), "--weights", str(weights), "--out", str(out),
                           "--min_area", "2000", *SHARDS, *ALARM, *extra])


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A stand-in model file, loaded as StandIn here and by a worker thread of this process."""
    from gacrystal import classifier
    monkeypatch.setattr(classifier, "load_classifier",
                        lambda path, trust_model=False, engine="auto": StandIn())
    weights = tmp_path / "model.keras"
    weights.write_bytes(b"stand-in")
    return weights


@pytest.fixture
def threads():
    """A cluster of two worker threads in this process, at a tcp:// address as a scheduler has:
    the stand-in model reaches its workers."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_what_a_cluster_or_experiment_folders_refuse_is_said_in_one_line(tmp_path):
    save_grey(np.zeros((8, 8)), tmp_path / "a.png")
    with pytest.raises(UserError, match=r"^--cluster monitors finished folders; --watch runs in "
                                        r"one process: drop --cluster for it$"):
        GAmonitor.main(["--frames", str(tmp_path), "--cluster", "local:2", "--watch"])
    with pytest.raises(UserError, match="Received: cluster=local:0$"):
        GAmonitor.main(["--frames", str(tmp_path), "--cluster", "local:0"])
    (tmp_path / "experiments" / "run-1").mkdir(parents=True)
    save_grey(np.zeros((8, 8)), tmp_path / "experiments" / "run-1" / "a.png")
    with pytest.raises(UserError, match="holds experiment folders; --opcua serves one run"):
        GAmonitor.main(["--frames", str(tmp_path / "experiments"),
                        "--opcua", "opc.tcp://127.0.0.1:4840/gacrystal/"])


def test_a_run_without_cluster_imports_no_dask(tmp_path):
    frames = tmp_path / "frames"
    disc_frames(frames, count=2, spike=2)
    (tmp_path / "model.keras").write_bytes(b"stand-in")
    code = ("import sys; sys.path.insert(0, 'tests')\n"
            "import GAmonitor, gacrystal.classifier\n"
            "from probe import StandIn\n"
            "gacrystal.classifier.load_classifier = lambda path, engine='auto': StandIn()\n"
            "status = GAmonitor.main(sys.argv[1:])\n"
            "assert not {'dask', 'distributed'} & set(sys.modules), 'Dask was imported'\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code, "--frames", str(frames), "--weights",
                             str(tmp_path / "model.keras"), "--out", str(tmp_path / "out"),
                             "--min_area", "2000"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "frames.csv").is_file()


def test_experiment_folders_on_a_cluster_give_one_process_files_each(
        stand_in, threads, tmp_path, capsys):
    experiments = tmp_path / "experiments"
    disc_frames(experiments / "run-2", count=5, spike=3)
    disc_frames(experiments / "run-10", count=4, spike=5)
    add_awkward_frames(experiments / "run-2", "frame (2).png")
    (experiments / "notes").mkdir()  # no frames: not an experiment
    assert monitor(experiments, tmp_path / "one", stand_in) == 3  # the alarm in run-2
    capsys.readouterr()
    assert monitor(experiments, tmp_path / "two", stand_in, "--cluster", threads) == 3
    text = capsys.readouterr().out
    assert "cluster: 2 workers at tcp://" in text and "from 2 experiments" in text
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["run-10", "run-2"]
    for name in ("run-2", "run-10"):
        one, two = outputs(tmp_path / "one" / name), outputs(tmp_path / "two" / name)
        assert {"frames.csv", "particles.csv", "sizes.csv"} <= set(two) and two == one
    verdicts = (tmp_path / "two" / "run-2" / "frames.csv").read_text()
    assert "duplicate" in verdicts and "dark" in verdicts
    assert "frame (4b).png" in (tmp_path / "two" / "run-2" / "unreadable.csv").read_text()


def test_a_second_run_on_a_cluster_goes_on_where_the_first_stopped(
        stand_in, threads, tmp_path, monkeypatch, capsys):
    frames, out = tmp_path / "frames", tmp_path / "two"
    disc_frames(frames, count=9, spike=4)
    save = session.save_run_state
    calls = []

    def stop_after_two_shards(run, identity, s):
        save(run, identity, s)
        calls.append(len(run.frames))
        if len(calls) == 3:  # once before the first frame, then after each shard
            raise KeyboardInterrupt  # as Ctrl-C would
    monkeypatch.setattr(session, "save_run_state", stop_after_two_shards)
    with pytest.raises(KeyboardInterrupt):
        monitor(frames, out, stand_in, "--cluster", threads)
    monkeypatch.setattr(session, "save_run_state", save)
    assert calls[-1] == 4 and len((out / "frames.csv").read_text().splitlines()) == 1 + 4
    capsys.readouterr()
    assert monitor(frames, out, stand_in, "--cluster", threads) == 3
    text = capsys.readouterr().out
    assert "4 frames already done" in text and "3 shards of up to 2 frames" in text
    assert monitor(frames, tmp_path / "one", stand_in) == 3
    assert outputs(out) == outputs(tmp_path / "one")
    capsys.readouterr()
    assert monitor(frames, out, stand_in, "--cluster", threads) == 3  # nothing left to do
    assert "0 shards" in capsys.readouterr().out and outputs(out) == outputs(tmp_path / "one")


def test_a_keras_model_on_a_cluster_pads_its_batches_as_one_process(runs, threads, tmp_path):
    """Keras pads a short batch to the widest batch so far, and a batch's shape changes the last
    bits: a worker (a thread here, the real loader) starts each shard at one process's widest.
    One batch a group of 2 frames (about 70 crops), so the widest grows from group to group."""
    frames, model = tmp_path / "frames", runs["a"] / "model.keras"
    spiking_frames(frames, count=6, spike=3)
    status = monitor(frames, tmp_path / "one", model, "--batch_size", "128")
    assert monitor(frames, tmp_path / "two", model, "--batch_size", "128",
                   "--cluster", threads) == status
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


@pytest.mark.slow  # worker processes
def test_two_local_workers_write_one_process_files(runs, tmp_path, capsys):
    frames, model = tmp_path / "frames", runs["a"] / "model.onnx"
    spiking_frames(frames, count=4, spike=3)
    add_awkward_frames(frames, "frame (2).png")
    status = monitor(frames, tmp_path / "one", model)
    capsys.readouterr()
    assert monitor(frames, tmp_path / "two", model, "--cluster", "local:2") == status
    assert "cluster: 2 workers" in capsys.readouterr().out
    two = outputs(tmp_path / "two")
    assert {"frames.csv", "particles.csv", "sizes.csv"} <= set(two)
    assert two == outputs(tmp_path / "one")


@pytest.mark.slow  # worker processes
def test_a_killed_workers_shards_are_redone_and_each_frame_appears_once(
        runs, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster
    frames, model = tmp_path / "frames", runs["a"] / "model.onnx"
    spiking_frames(frames, count=8, spike=4)
    status = monitor(frames, tmp_path / "one", model)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids, killed = client.run(os.getpid), []
        save = session.save_run_state

        def kill_after_the_first_shard(run, identity, s):
            save(run, identity, s)
            if len(run.frames) and not killed:  # a worker with work, as the run goes on
                busy = client.processing()
                victim = max(busy, key=lambda worker: len(busy[worker]))
                killed.append((victim, len(busy[victim])))
                os.kill(pids[victim], signal.SIGKILL)
        monkeypatch.setattr(session, "save_run_state", kill_after_the_first_shard)
        assert monitor(frames, tmp_path / "two", model,
                       "--cluster", cluster.scheduler_address) == status
        assert killed and pids[killed[0][0]] not in client.run(os.getpid).values()
    names = [line.split(",")[0] for line in
             (tmp_path / "two" / "frames.csv").read_text().splitlines()[1:]]
    assert names == [f"frame ({i}).png" for i in range(1, 9)]  # each once, in order
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
