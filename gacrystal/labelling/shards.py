"""Labelling a folder on a Dask cluster (GAinfer.py --cluster): the CSV one process writes, made
in shards that a lost worker redoes and a second run skips. Connecting, the worker's model and
the tasks are gacrystal.cluster's (the recipe monitoring on a cluster shares).

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
- **The model, once per worker** (gacrystal.cluster.cached_classifier).
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

Dask is imported only through gacrystal.cluster, and only when a cluster is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from gacrystal.cli import progress_bar
from gacrystal.cluster import (Shards, cached_classifier, connect, model_identity, stamp,
                               tell_workers)
from gacrystal.files import write_text_atomic


def shard_key(files: list[str], identity: tuple, batch_size: int, threshold: float,
              reject: bool) -> str:
    text = json.dumps([[stamp(f) for f in files], identity, batch_size, threshold, reject])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


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
                     parts: Path | None = None, progress: bool = True,
                     engine: str = "auto") -> list[dict]:
    """Labels the files in shards on the client's workers; returns one process's records in one
    process's order. With `parts`, finished shards are written there and found again."""
    identity = model_identity(model, trust_model, engine)
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
                  out: Path | None = None, fresh: bool = False,
                  engine: str = "auto") -> list[dict]:
    """GAinfer.py --cluster: connects (or starts a local cluster) and labels the files; with
    `out`, goes on from the shards in OUT.parts/ unless `fresh`."""
    parts = parts_folder(out) if out is not None else None
    if parts is not None and fresh:
        remove_parts(out)
    with connect(cluster) as client:
        return label_on_cluster(client, files, model, trust_model, batch_size, threshold, reject,
                                shard_batches, parts, engine=engine)
