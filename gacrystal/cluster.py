"""Labelling a folder on a Dask cluster (GAinfer.py --cluster): the CSV one process writes, made
in shards that a lost worker redoes and a second run skips. Also the recipe monitoring on a
cluster (GAmonitor.py --cluster, gacrystal/monitoring/shards.py) shares: `check_cluster`,
`connect`, `model_identity` and the worker's `cached_classifier`, `tell_workers`, and `Shards`
(tasks taken as they finish, a task lost with every worker that ran it reported in one line).

    python GAinfer.py --images ARCHIVE --out labels.csv --cluster local:4          # 4 processes
    python GAinfer.py --images ARCHIVE --out labels.csv --cluster tcp://HOST:8786  # a scheduler

- **Shards.** The files, in the order one process labels them, are cut into shards of
  shard_batches × batch_size consecutive files, so every shard starts on one of one process's
  batch boundaries and each image is computed in the same batch, beside the same images, as one
  process computes it. That matters: Keras (oneDNN) and the OOD score change in the last bits with
  the shape of a batch, which the CSV's sixth decimal can show. A Keras worker also pads a short
  batch as one process would (`Classifier.pad_short_batches_to`): in the first shard as a fresh
  process does, in the others to the batch size. (One process pads to its widest batch so far:
  the batch size from its first full batch on. Only where every batch before a shard held an
  unreadable file would its padding, and so the last bits, differ.)
- **The model, once per worker.** A worker process loads the model on its first shard and keeps
  it in `LOADED`, keyed by the file's path, size and modification time (and those of the files
  beside it that change its answers), for the rest of the run and for later runs on the same
  cluster. The model and the images must be at the same paths on every machine. The model's
  runtime keeps its own threads (all the machine's cores, as in one process), so one worker
  process per machine is enough.
- **Order.** Shard i's records go to place i whichever worker finishes first, so the rows are
  one process's rows in one process's order.
- **A lost worker.** The scheduler gives the unfinished shards of a worker that died to another
  worker; the records are kept by shard, so a shard done twice still appears once.
- **Going on where a run stopped.** With --out, each finished shard is written at once to
  OUT.parts/ (`shard-INDEX-KEY.json`, floats in full precision). KEY hashes the shard's files
  (path, size, modification time) and all that decides their rows (model files, threshold,
  reject, batch size), so a second run into the same --out skips the shards it finds there and a
  changed folder or model is never mixed in. When every shard is done the CSV is written as one
  process writes it and OUT.parts/ is removed; --overwrite starts afresh.

Dask is imported only here, and only when a cluster is used.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from gacrystal import calibration, ood
from gacrystal.cli import progress_bar
from gacrystal.errors import UserError
from gacrystal.files import write_text_atomic

INSTALL_HINT = 'pip install "dask[distributed]" (or pip install ".[cluster]")'
LOADED: dict[tuple, tuple] = {}  # in each worker: model identity -> (Classifier, its lock)
_LOADING = threading.Lock()


def check_cluster(value: str) -> int | str:
    """The number of local worker processes of `local:N`, or the scheduler address of
    `tcp://HOST:PORT`."""
    kind, _, rest = value.partition(":")
    if kind == "local" and rest.isdigit() and int(rest) >= 1:
        return int(rest)
    host, _, port = rest[2:].rpartition(":")
    if kind == "tcp" and rest.startswith("//") and host and port.isdigit():
        return value
    raise UserError("cluster must be local:N (N worker processes on this machine, N at least 1) "
                    f"or tcp://HOST:PORT (a running Dask scheduler). Received: cluster={value}")


@contextlib.contextmanager
def connect(cluster: str):
    """A Dask client of a new local cluster (N processes, one thread each) or of a scheduler."""
    where = check_cluster(cluster)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(f"--cluster needs Dask: {INSTALL_HINT}") from None
    if isinstance(where, int):
        # No memory limit: a worker holding a model is not paused or restarted for its size.
        with LocalCluster(n_workers=where, threads_per_worker=1, processes=True,
                          memory_limit=0, dashboard_address=None) as local, Client(local) as client:
            yield client
        return
    try:
        client = Client(where, timeout="10s")
    except OSError as error:
        raise UserError(f"no Dask scheduler answered at cluster={where} ({error}); start one with "
                        "`dask scheduler` and workers with `dask worker ADDRESS`") from None
    with client:
        yield client


def tell_workers(client, plan: str):
    """Prints the cluster's workers and address with what it is given (and how to add workers
    when it has none)."""
    info = client.scheduler_info()
    print(f"cluster: {len(info['workers'])} workers at {info['address']}; {plan}")
    if not info["workers"]:
        print(f"waiting for workers: start them with `dask worker {info['address']}`")


class Shards:
    """Tasks on the cluster's workers, taken as each finishes, in any order; more may be
    submitted while they are being taken. The scheduler gives a dead worker's tasks to another;
    a task lost with every worker that ran it stops the run with `what` it held and `hint`."""

    def __init__(self, client, hint: str):
        from distributed import as_completed
        self.client, self.hint = client, hint
        self.pending, self.tags = as_completed(), {}

    def submit(self, tag, what: str, func, *args, key: str, priority: int = 0):
        future = self.client.submit(func, *args, key=key, priority=priority)
        self.tags[future] = (tag, what)
        self.pending.add(future)

    def __iter__(self):
        """(tag, result) of each task as it finishes (its future then released)."""
        from distributed import KilledWorker
        for future in self.pending:
            tag, what = self.tags.pop(future)
            try:
                result = future.result()
            except KilledWorker:
                raise UserError(f"{what} was lost with every worker that ran it; "
                                f"{self.hint}") from None
            yield tag, result


def stamp(path: str | Path) -> list:
    """What tells one version of a file from another: its path, size and modification time."""
    try:
        info = os.stat(path)
        return [str(path), info.st_size, info.st_mtime_ns]
    except OSError:  # unreadable or a broken link: labelled ERROR, by name
        return [str(path), None, None]


def model_identity(model: Path, trust_model: bool) -> tuple:
    """The model file and the files beside it that change its answers (model card, OOD
    statistics, a calibration fitted later), each stamped."""
    beside = [model.parent / "config.json", model.parent / ood.FILE_NAME,
              model.parent / ood.INT8_FILE_NAME, ood.sidecar_path(model),
              calibration.sidecar_path(model)]
    stamps = [stamp(model)] + [stamp(p) for p in beside if p.exists()]
    return os.path.abspath(model), trust_model, json.dumps(stamps)


def shard_key(files: list[str], identity: tuple, batch_size: int, threshold: float,
              reject: bool) -> str:
    text = json.dumps([[stamp(f) for f in files], identity, batch_size, threshold, reject])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def cached_classifier(identity: tuple):
    """The worker's classifier of this model, loaded on first use, and the lock that keeps two
    of the worker's threads from using it at once."""
    from gacrystal.classifier import load_classifier
    with _LOADING:
        if identity not in LOADED:
            path, trust_model, _ = identity
            LOADED[identity] = (load_classifier(path, trust_model), threading.Lock())
        return LOADED[identity]


def label_shard(identity: tuple, files: list[str], batch_size: int, threshold: float,
                reject: bool, first: bool) -> list[dict]:
    """Runs on a worker: the records of one shard, computed as one process computes them."""
    classifier, lock = cached_classifier(identity)
    with lock:
        classifier.pad_short_batches_to(0 if first else batch_size)
        return classifier.label(files, batch_size, threshold, reject=reject)


def parts_folder(out: Path) -> Path:
    """Where the finished shards of a run writing `out` are kept until the CSV is written."""
    return out.with_name(f"{out.name}.parts")


def part_name(index: int, key: str) -> str:
    return f"shard-{index:06d}-{key}.json"


def read_parts(parts: Path, keys: list[str]) -> dict[int, list[dict]]:
    """The records of the shards an earlier run finished: those whose file is there under the
    shard's index and present key."""
    done = {}
    for index, key in enumerate(keys):
        path = parts / part_name(index, key)
        if path.is_file():
            done[index] = json.loads(path.read_text(encoding="utf-8"))
    return done


def write_part(parts: Path, index: int, key: str, records: list[dict]):
    parts.mkdir(parents=True, exist_ok=True)
    # ensure_ascii: a file name that is not valid UTF-8 (a lone surrogate) survives as \\udcxx.
    write_text_atomic(parts / part_name(index, key), json.dumps(records))


def remove_parts(out: Path):
    shutil.rmtree(parts_folder(out), ignore_errors=True)


def label_on_cluster(client, files: list[str], model: Path, trust_model: bool, batch_size: int,
                     threshold: float, reject: bool, shard_batches: int,
                     parts: Path | None = None, progress: bool = True) -> list[dict]:
    """Labels the files in shards on the client's workers; returns one process's records in one
    process's order. With `parts`, finished shards are written there and found again."""
    identity = model_identity(model, trust_model)
    size = batch_size * shard_batches
    shards = [files[i:i + size] for i in range(0, len(files), size)]
    keys = [shard_key(shard, identity, batch_size, threshold, reject) for shard in shards]
    done = read_parts(parts, keys) if parts is not None else {}
    tell_workers(client, f"{len(shards)} shards of up to {size} images"
                 + (f", {len(done)} already done in {parts}" if done else ""))
    tasks = Shards(client, "label those files in one process to see why")
    # Workers read absolute paths (another machine's working folder differs); rows keep the names.
    for i in range(len(shards)):
        if i not in done:
            tasks.submit(i, f"shard {i} ({shards[i][0]} to {shards[i][-1]})", label_shard,
                         identity, [os.path.abspath(f) for f in shards[i]], batch_size,
                         threshold, reject, i == 0, key=f"gacrystal-shard-{i}-{keys[i]}")
    bar = progress_bar(len(files), "labelling", enabled=progress)
    bar.update(sum(len(shards[i]) for i in done))
    for i, records in tasks:
        done[i] = [dict(record, file=name) for record, name in zip(records, shards[i])]
        if parts is not None:
            write_part(parts, i, keys[i], done[i])
        bar.update(len(shards[i]))
    bar.close()
    return [record for i in range(len(shards)) for record in done[i]]


def label_on_dask(cluster: str, files: list[str], model: Path, trust_model: bool,
                  batch_size: int, threshold: float, reject: bool, shard_batches: int,
                  out: Path | None = None, fresh: bool = False) -> list[dict]:
    """GAinfer.py --cluster: connects (or starts a local cluster) and labels the files; with
    `out`, goes on from the shards in OUT.parts/ unless `fresh`."""
    parts = parts_folder(out) if out is not None else None
    if parts is not None and fresh:
        remove_parts(out)
    with connect(cluster) as client:
        return label_on_cluster(client, files, model, trust_model, batch_size, threshold, reject,
                                shard_batches, parts)
