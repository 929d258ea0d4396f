"""Dask for labelling and monitoring on a cluster (GAinfer.py --cluster, gacrystal/labelling/
shards.py; GAmonitor.py --cluster, gacrystal/monitoring/shards.py): the recipe both share.

- `check_cluster` and `connect`: `local:N` (N worker processes on this machine) or
  `tcp://HOST:PORT` (a running scheduler); `tell_workers` says what the cluster was given.
- **The model, once per worker.** A worker process loads the model on its first task and keeps
  it in `LOADED` (`cached_classifier`), keyed by `model_identity`: the file's path, size and
  modification time, and those of the files beside it that change its answers; for the rest of
  the run and for later runs on the same cluster. The model and the images must be at the same
  paths on every machine. The model's runtime keeps its own threads (all the machine's cores, as
  in one process), so one worker process per machine is enough.
- `Shards`: tasks taken as they finish; the scheduler gives a dead worker's unfinished tasks to
  another worker, and a task lost with every worker that ran it is reported in one line.

Dask is imported only here, and only when a cluster is used.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from gacrystal import calibration, ood
from gacrystal.errors import UserError
from gacrystal.files import CONFIG_JSON, OOD_INT8_NPZ, OOD_NPZ

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


def model_identity(model: Path, trust_model: bool, engine: str = "auto") -> tuple:
    """The model file and the files beside it that change its answers (model card, OOD
    statistics, a calibration fitted later), each stamped, and the engine that runs an .onnx file
    (the setting; each worker resolves "auto" itself)."""
    beside = [model.parent / CONFIG_JSON, model.parent / OOD_NPZ,
              model.parent / OOD_INT8_NPZ, ood.sidecar_path(model),
              calibration.sidecar_path(model)]
    stamps = [stamp(model)] + [stamp(p) for p in beside if p.exists()]
    return os.path.abspath(model), trust_model, engine, json.dumps(stamps)


def cached_classifier(identity: tuple):
    """The worker's classifier of this model, loaded on first use, and the lock that keeps two
    of the worker's threads from using it at once."""
    from gacrystal.classifier import load_classifier
    with _LOADING:
        if identity not in LOADED:
            path, trust_model, engine, _ = identity
            LOADED[identity] = (load_classifier(path, trust_model, engine=engine),
                                threading.Lock())
        return LOADED[identity]
