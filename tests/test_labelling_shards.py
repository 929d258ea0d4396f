"""Labelling on Dask (GAinfer.py --cluster): one process's CSV, a killed worker, a second run."""
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

import GAinfer
import gacrystal.cluster
import gacrystal.labelling.shards
from gacrystal import load_classifier
from gacrystal.cluster import check_cluster, model_identity
from gacrystal.errors import UserError
from gacrystal.labelling.shards import label_shard, parts_folder
from conftest import ROOT

SHARDS = ["--batch_size", "2", "--shard_batches", "2"]  # shards of 4 images: several per folder


@pytest.fixture
def folder(split_dir, tmp_path):
    """21 images and one unreadable file, which sits in the first batch."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(split_dir.rglob("*.png"))[:21]:
        shutil.copyfile(path, folder / f"{path.parent.name}-{path.name}")
    (folder / "CEX-A.png").write_bytes(b"not an image")
    return folder


def label(weights, folder, out, *extra):
    return GAinfer.main(["--weights", str(weights), "--images", str(folder), "--out", str(out),
                         *SHARDS, *extra])


def test_cluster_values_are_checked():
    assert check_cluster("local:2") == 2
    assert check_cluster("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("local", "local:0", "local:two", "tcp://host", "10.0.0.5:8786", "http://h:1"):
        with pytest.raises(UserError, match=f"Received: cluster={bad}$"):
            check_cluster(bad)


def test_cluster_labels_only(tmp_path):
    Image.new("RGB", (40, 40)).save(tmp_path / "one.png")
    with pytest.raises(UserError, match="--cluster labels only; --explain, --review run in one"):
        GAinfer.main(["--images", str(tmp_path), "--cluster", "local:2", "--explain", "cams",
                      "--review", "review"])


def test_a_run_without_cluster_imports_no_dask(runs, folder, tmp_path):
    code = ("import sys, GAinfer\n"
            "try:\n    GAinfer.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "status = GAinfer.main(sys.argv[1:])\n"
            "assert not {'dask', 'distributed'} & set(sys.modules), 'Dask was imported'\n")
    result = subprocess.run([sys.executable, "-c", code, "--weights", str(runs["a"] / "model.onnx"),
                             "--images", str(folder), "--out", str(tmp_path / "labels.csv")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow  # worker processes
def test_two_local_workers_write_one_process_csv(runs, folder, tmp_path):
    model = runs["a"] / "model.onnx"
    assert label(model, folder, tmp_path / "one.csv") == 1  # 1: the unreadable file
    assert label(model, folder, tmp_path / "two.csv", "--cluster", "local:2") == 1
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert not parts_folder(tmp_path / "two.csv").exists()


def test_a_worker_computes_each_image_in_one_process_batch(runs, split_dir, monkeypatch):
    """Keras in this process, as a worker runs it: shards in any order, the short last one first,
    give one process's numbers to the last bit (a lone image unpadded changes its ood_score)."""
    model = runs["a"] / "model.keras"
    files = [str(f) for f in sorted(split_dir.rglob("*.png"))][:33]  # batches of 16, 16 and 1
    one_process = load_classifier(model).label(files, 16)
    monkeypatch.setattr(gacrystal.cluster, "LOADED", {})  # a fresh worker
    identity = model_identity(model, False)
    shards = {i: label_shard(identity, files[i:i + 16], 16, 0.5, True, first=i == 0)
              for i in (32, 16, 0)}
    assert [r for i in sorted(shards) for r in shards[i]] == one_process


def wait_for(condition, seconds=120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow  # worker processes
def test_a_killed_workers_shards_are_redone_and_each_image_appears_once(runs, folder, tmp_path):
    from distributed import Client, LocalCluster
    model = runs["a"] / "model.onnx"
    label(model, folder, tmp_path / "one.csv")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            ThreadPoolExecutor(1) as pool:
        pids = client.run(os.getpid)
        run = pool.submit(label, model, folder, tmp_path / "two.csv",
                          "--cluster", cluster.scheduler_address)
        # The first shard a worker gets includes importing and loading the model: a second or so.
        victim, shards = wait_for(lambda: next(((worker, keys) for worker, keys
                                                 in client.processing().items() if keys), None))
        os.kill(pids[victim], signal.SIGKILL)
        assert not run.done()
        assert run.result(timeout=240) == 1
        loaded = client.run(lambda: len(gacrystal.cluster.LOADED))
        for shard in shards:  # taken from the dead worker, then finished once elsewhere
            moves = [(s[2], s[3]) for s in client.story(shard) if s[0] == "scheduler"]
            assert ("processing", "released") in moves and moves.count(("processing", "memory")) == 1
        assert pids[victim] not in client.run(os.getpid).values()  # its nanny started another
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert set(loaded.values()) <= {0, 1}  # one model per worker process, whatever its shards


@pytest.mark.slow  # worker processes
def test_a_second_run_goes_on_where_the_first_stopped(runs, folder, tmp_path, monkeypatch,
                                                      capsys):
    model, out = runs["a"] / "model.onnx", tmp_path / "two.csv"
    write_part = gacrystal.labelling.shards.write_part

    def stop_after_two(parts, index, key, records):
        write_part(parts, index, key, records)
        if len(list(parts.iterdir())) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would, with two shards written
    monkeypatch.setattr(gacrystal.labelling.shards, "write_part", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        label(model, folder, out, "--cluster", "local:1")
    monkeypatch.undo()
    assert not out.exists() and len(list(parts_folder(out).iterdir())) == 2
    # A changed image changes its shard's key: that shard is labelled again, never mixed in.
    shard = int(sorted(parts_folder(out).iterdir())[0].name.split("-")[1])
    changed = GAinfer.list_images(folder)[4 * shard + 3]  # the shard's last file (4 per shard)
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    capsys.readouterr()
    assert label(model, folder, out, "--cluster", "local:1") == 1
    assert "6 shards of up to 4 images, 1 already done" in capsys.readouterr().out
    assert label(model, folder, tmp_path / "one.csv") == 1
    assert out.read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert not parts_folder(out).exists()
