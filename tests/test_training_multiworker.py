"""Training on several workers (MultiWorkerMirroredStrategy, TF_CONFIG): two worker processes of
GAmain.py on loopback ports, one thread each; a worker killed and both started again; a worker that
never comes up. Tiny: 32 px images, ResNet-50, two epochs of four steps."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import GAmain
from conftest import ROOT, TINY
from gacrystal import UserError
from gacrystal.training.multiworker import is_chief, loopback_tf_configs, read_tf_config

# Dropout and augmentation off: what is left between two workers and one process at the same
# global batch is the order of floating-point sums (and BatchNorm's synchronised statistics).
ARGS = ["--epochs", "2", "--f1_stop", "2", "--no-export_onnx", *TINY,
        "--no-augment", "--dropout1", "0", "--dropout2", "0"]
RUN_NAME = "two-workers"
WORKER_SECONDS = 900  # a bound against a hang, not a speed check: a shared machine is slow


def start_worker(index: int, configs: list[str], args: list[str], logs, temporary=None):
    """GAmain.py as worker `index` of TF_CONFIG, on one core; its output goes to files."""
    env = dict(os.environ, TF_CONFIG=configs[index], TF_CPP_MIN_LOG_LEVEL="3",
               OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    if temporary is not None:
        env["TMPDIR"] = str(temporary)
    out, err = logs / f"worker{index}.out", logs / f"worker{index}.err"
    return subprocess.Popen([sys.executable, str(ROOT / "GAmain.py"), *args], cwd=ROOT, env=env,
                            stdout=out.open("a"), stderr=err.open("a"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(processes, timeout=WORKER_SECONDS) -> list[int]:
    """Every process's exit status; all of them killed (and the test failed) past the timeout."""
    deadline = time.time() + timeout
    try:
        return [p.wait(timeout=max(1, deadline - time.time())) for p in processes]
    except subprocess.TimeoutExpired:
        pytest.fail("a worker hung")
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()  # SIGKILL: TensorFlow's workers catch SIGTERM
                p.wait()


def text(logs, name):
    return (logs / name).read_text()


def history(run_dir, column):
    header, *lines = (run_dir / "history.csv").read_text().splitlines()
    return [float(line.split(",")[header.split(",").index(column)]) for line in lines]


@pytest.fixture(scope="module")
def two_workers(split_dir, tmp_path_factory):
    """An uninterrupted run of two workers; worker 1's temporary folder is its own."""
    work = tmp_path_factory.mktemp("two-workers")
    (work / "worker1-tmp").mkdir()
    configs = loopback_tf_configs(2)
    args = ["--data", str(split_dir), "--runs", str(work / "runs"), "--distribute", "multiworker",
            "--run_name", RUN_NAME, *ARGS]
    started = time.time()
    workers = [start_worker(i, configs, args, work, work / "worker1-tmp" if i else None)
               for i in range(2)]
    codes = finish(workers)
    return {"work": work, "codes": codes, "seconds": time.time() - started,
            "run_dir": work / "runs" / RUN_NAME}


@pytest.mark.training
def test_two_workers_train_to_the_end_in_one_run_folder_at_one_process_loss(two_workers,
                                                                             split_dir, tmp_path):
    work, run_dir = two_workers["work"], two_workers["run_dir"]
    assert two_workers["codes"] == [0, 0], text(work, "worker0.err")[-3000:] + text(
        work, "worker1.err")[-3000:]
    print(f"two workers: {two_workers['seconds']:.0f} s")
    assert [p.name for p in (work / "runs").iterdir()] == [RUN_NAME]  # one run folder
    assert {"model.keras", "model.h5", "config.json", "history.csv", "report.html",
            "ood.npz"} <= {p.name for p in run_dir.iterdir()}
    assert not (run_dir / "backup").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["settings"]["distribute"] == "multiworker"
    assert config["training"]["status"] == "finished" and config["training"]["epochs_run"] == 2
    assert history(run_dir, "epoch") == [0, 1]
    chief, other = text(work, "worker0.out"), text(work, "worker1.out")
    assert "training on 2 device(s)" in chief and "Epoch 2 - validation" in chief
    assert "Epoch" not in other and "run folder" not in other  # only the chief reports
    assert not any((work / "worker1-tmp").iterdir())  # its backups were temporary, and are gone
    # One process at the same global batch (16): the first epoch's loss agrees within 1%
    # (measured: 0.13%, from the order of the sums and BatchNorm's synchronised statistics).
    GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--distribute", "none",
                 *ARGS, "--epochs", "1"])
    one = history(next(tmp_path.iterdir()), "loss")[0]
    print(f"first-epoch loss: two workers {history(run_dir, 'loss')[0]:.6f}, one process {one:.6f}")
    assert history(run_dir, "loss")[0] == pytest.approx(one, rel=0.01)


def wait_for_backup(processes, run_dir, epochs, timeout=WORKER_SECONDS):
    metadata = run_dir / "backup" / "training_metadata.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if json.loads(metadata.read_text())["epoch"] >= epochs:
                return
        except (OSError, ValueError, KeyError):  # not there yet, or being written
            pass
        assert all(p.poll() is None for p in processes), "a worker ended before its first backup"
        time.sleep(0.05)
    finish(processes, timeout=0)
    pytest.fail("no backup in time")


@pytest.mark.training
def test_a_killed_worker_stops_the_other_and_the_same_command_resumes_the_run(two_workers,
                                                                            split_dir, tmp_path):
    configs = loopback_tf_configs(2)
    args = ["--data", str(split_dir), "--runs", str(tmp_path / "runs"), "--distribute",
            "multiworker", "--run_name", RUN_NAME, *ARGS]
    run_dir = tmp_path / "runs" / RUN_NAME
    workers = [start_worker(i, configs, args, tmp_path) for i in range(2)]
    wait_for_backup(workers, run_dir, 1)
    workers[0].kill()  # SIGKILL the chief, in the second (last) epoch
    assert finish(workers, timeout=300) == [-signal.SIGKILL, 2]  # the other stops, in one line
    assert "a worker stopped answering in epoch 2 (worker 0)" in text(tmp_path, "worker1.err")
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert not (run_dir / "model.keras").exists()

    workers = [start_worker(i, configs, args, tmp_path) for i in range(2)]  # the same command
    assert finish(workers) == [0, 0], text(tmp_path, "worker0.err")[-3000:]
    assert "resuming after epoch 1" in text(tmp_path, "worker0.out")
    straight = two_workers["run_dir"]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in straight.iterdir())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["resumed"] and config["training"]["epochs_run"] == 2
    assert history(run_dir, "epoch") == [0, 1]
    # The same weights, optimizer state, epoch and shuffle order resume: measured, the same
    # numbers to the last digit history.csv keeps.
    for column in ("loss", "val_loss", "val_f1_macro"):
        print(f"{column}: resumed {history(run_dir, column)}, uninterrupted "
              f"{history(straight, column)}")
        assert history(run_dir, column) == pytest.approx(history(straight, column), rel=1e-4,
                                                         abs=1e-6), column


@pytest.mark.slow
def test_a_worker_that_never_comes_up_is_a_one_line_error_after_worker_timeout(split_dir,
                                                                               tmp_path):
    configs = loopback_tf_configs(2)
    args = ["--data", str(split_dir), "--runs", str(tmp_path / "runs"), "--distribute",
            "multiworker", "--run_name", RUN_NAME, "--worker_timeout", "5", *ARGS]
    started = time.time()
    # bounded: the worker ends by itself (TensorFlow alone would wait for ever)
    assert finish([start_worker(0, configs, args, tmp_path)], timeout=300) == [2]
    error = [line for line in text(tmp_path, "worker0.err").splitlines() if "error:" in line]
    address = json.loads(configs[1])["cluster"]["worker"][1]
    assert error == [f"error: worker 1 ({address}) did not come up within "
                     "worker_timeout=5 s; start every worker of TF_CONFIG, each with its own "
                     "task index, or check the addresses"]
    print(f"a worker alone, worker_timeout=5: ended after {time.time() - started:.0f} s "
          "(TensorFlow's start included)")
    assert not (tmp_path / "runs").exists()  # nothing started


def test_tf_config_is_checked_in_one_line_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs the TF_CONFIG environment variable"):
        GAmain.main(["--distribute", "multiworker", "--run_name", "x", "--runs", str(tmp_path)])
    for config, message in (("{not json", "TF_CONFIG is not JSON"),
                            ('{"cluster": {}}', "needs a cluster and a task"),
                            ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
                             "only chief and worker jobs"),
                            ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}',
                             "host:port addresses"),
                            ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
                             "Received: task=")):
        with pytest.raises(UserError, match=message):
            read_tf_config(config)
    monkeypatch.setenv("TF_CONFIG", loopback_tf_configs(2)[1])
    with pytest.raises(UserError, match="multiworker needs a run_name"):
        GAmain.main(["--distribute", "multiworker", "--runs", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_the_chief_is_tensorflow_s():
    def config(cluster, kind, index):
        return {"cluster": cluster, "task": {"type": kind, "index": index}}
    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(config(workers, "worker", 0)) and not is_chief(config(workers, "worker", 1))
    with_chief = {"chief": ["c:1"], **workers}
    assert is_chief(config(with_chief, "chief", 0))
    assert not is_chief(config(with_chief, "worker", 0))
    loopback = [read_tf_config(text) for text in loopback_tf_configs(3)]
    assert [is_chief(c) for c in loopback] == [True, False, False]
    addresses = loopback[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(c["cluster"]["worker"] == addresses for c in loopback)


def test_pieces_of_each_batch_make_the_batch_and_a_batch_too_small_to_share_sits_out(
        synthetic_root):
    """gacrystal.training.data's shard: three replicas, each its piece of every batch of 4."""
    from gacrystal.training.data import make_dataset, steps_per_epoch
    paths = sorted(str(p) for p in synthetic_root.rglob("*.png"))[:9]
    rows = np.arange(9, dtype=np.float32)  # the labels say which image is where
    whole = [labels.numpy().tolist() for _, labels in make_dataset(paths, rows, 32, 4)]
    pieces = [[labels.numpy().tolist() for _, labels in make_dataset(paths, rows, 32, 4,
                                                                     shard=(i, 1, 3))]
              for i in range(3)]
    assert whole == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert pieces == [[[0, 3], [4, 7]], [[1], [5]], [[2], [6]]]  # [8]: fewer images than pieces
    assert steps_per_epoch(9, 4, 3) == 2 and steps_per_epoch(9, 4) == 3
    two_local = [labels.numpy().tolist() for _, labels in make_dataset(paths, rows, 32, 4,
                                                                       shard=(1, 2, 3))]
    assert two_local == [[1], [2], [5], [6]]  # a worker with two replicas: pieces 1 and 2
