"""Monitoring finished folders of frames on a Dask cluster (GAmonitor.py --cluster): the tables
one process writes, from frames done in shards anywhere and recorded here, in order.

    with connect("local:2") as client:                     # gacrystal.cluster
        facts = model_facts(client, identity)              # the model card, from a worker
        run = Monitor(None, out, clock, alarm, tile_size=...)
        run.resume()
        monitor_on_cluster(client, [Experiment(run, new_frames(folder, run))], identity, 4, 4)

- **Shards.** The frames to do, in the order one process takes them, are cut into shards of
  shard_batches groups of frames_per_batch frames: the groups whose crops one process classifies
  in shared batches (Monitor.process).
- **Two tasks a shard.** A worker first *looks* at each frame: reads it, measures its quality
  (gacrystal.monitoring.quality.measure) and, where it may be good (neither dark nor saturated),
  finds its candidates. Here the frames are judged in order (duplicates, focus and fouling
  depend on the frames before), a shard once those before it are. Then a worker *classifies* the
  in-focus crops of each group's good frames in shared batches (classify_candidates, as
  Monitor.process does; those frames read again), and here each shard is recorded
  (Monitor.record_frames: time, counts, sizes, alarm, tables; a frame that gets an overlay read
  again), once those before it are. Classifying goes before looking (its priority), so rows are
  written as the run goes. A frame judged not good after its candidates were found costs that
  finding only; nothing of it is classified, as in one process.
- **The same numbers.** Each group's crops make one process's batches, and a Keras model pads a
  short batch to the widest batch one process would have run by then (computed here from the
  groups before), so each crop is computed in a batch of the same shape beside the same crops.
- **The model, once per worker** (gacrystal.cluster.cached_classifier); this machine never
  loads it.
- **A lost worker.** The scheduler gives its unfinished tasks to another worker; results are kept
  by shard and recorded once, so each frame appears exactly once.
- **Going on where a run stopped**: the tables are the record. A second run's Monitor resumes
  from frames.csv, and only the frames not yet done are sent.
- **Several experiments** share the cluster: the shards of all are sent at once, each
  experiment judged and recorded in its own order into its own Monitor.

Dask is imported only through gacrystal.cluster, and only when a cluster is used.
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import Callable

from gacrystal.cli import progress_bar
from gacrystal.cluster import Shards, cached_classifier
from gacrystal.images import grey_levels
from gacrystal.monitoring.candidates import Candidate, find_candidates
from gacrystal.monitoring.monitor import Monitor
from gacrystal.monitoring.perframe import SeenFrame, classify_candidates, read_frame
from gacrystal.monitoring.quality import Measures, measure
from gacrystal.monitoring.watch import in_groups

CLASSIFY_FIRST = 1  # the priority of classifying over looking (Dask runs higher first)


@dataclasses.dataclass
class FrameLook:
    """What a worker saw of one frame: its file's modification time, its shape, its quality
    Measures and, where it may be good, its candidates; or why it could not be read."""
    mtime: float = 0.0
    shape: tuple[int, ...] = ()
    measures: Measures | None = None
    candidates: list[Candidate] | None = None
    error: str = ""


def look_at_shard(paths: list[str], tile_size: int, min_area: float) -> tuple[list, dict]:
    """Runs on a worker: each frame's FrameLook, and the seconds spent reading and finding."""
    seconds, looks = {"read": 0.0, "find": 0.0}, []
    for path in paths:
        started = time.perf_counter()
        rgb, mtime, why = read_frame(Path(path))
        if rgb is None:
            looks.append(FrameLook(error=why))
            continue
        measures = measure(grey_levels(rgb))
        found = time.perf_counter()
        candidates = (find_candidates(rgb, tile_size, min_area) if measures.seen_through
                      else None)
        seconds["read"] += found - started
        seconds["find"] += time.perf_counter() - found
        looks.append(FrameLook(mtime, rgb.shape, measures, candidates))
    return looks, seconds


def classify_shard(identity: tuple, groups: list[list[tuple[str, list[Candidate]]]],
                   batch_size: int, threshold: float, reject: bool,
                   widest: int) -> tuple[list, dict]:
    """Runs on a worker: the classifier records of each group's (frame, candidates), the crops
    of a group in shared batches as Monitor.process makes them; a Keras model's short batches
    padded as after a batch of `widest` crops (one process's widest before this shard)."""
    from gacrystal.images import read_rgb
    classifier, lock = cached_classifier(identity)
    started = time.perf_counter()
    with lock:
        classifier.pad_short_batches_to(widest)
        records = [classify_candidates(
            classifier, [(read_rgb(path) if any(c.in_focus for c in cs) else None, cs)
                         for path, cs in group], batch_size, threshold, reject)
            for group in groups]
    return records, {"classify": time.perf_counter() - started}


def card_of(identity: tuple) -> dict:
    """Runs on a worker: what the monitor needs to know of the model."""
    classifier, _ = cached_classifier(identity)
    return {"card": classifier.card, "can_reject": classifier.can_reject,
            "engine": classifier.engine}


def model_facts(client, identity: tuple) -> dict:
    """The model's card, whether it can reject and what runs it, from a worker (which keeps the
    model)."""
    return client.submit(card_of, identity, key=f"gacrystal-card-{uuid.uuid4().hex}").result()


@dataclasses.dataclass
class Experiment:
    """One run on the cluster: its Monitor, the frames to do (in order), and what to call after
    each shard is recorded (GAmonitor.py saves monitor.json). The rest is kept while it runs."""
    run: Monitor
    todo: list[Path]
    saved: Callable[[], None] = lambda: None
    shards: list[list[Path]] = dataclasses.field(default_factory=list)
    looked: dict[int, list[FrameLook]] = dataclasses.field(default_factory=dict)
    judged: dict[int, list[list]] = dataclasses.field(default_factory=dict)
    classified: dict[int, list] = dataclasses.field(default_factory=dict)
    next_judged: int = 0
    next_recorded: int = 0
    widest: int = 0  # the widest batch one process would have classified so far


def judge_groups(run: Monitor, paths: list[Path], looks: list[FrameLook],
                 frames_per_batch: int) -> list[list]:
    """A shard's frames judged in order, in groups: each a SeenFrame (candidates kept only for
    a good frame) or (path, why it could not be read)."""
    groups = []
    for group in in_groups(list(zip(paths, looks)), frames_per_batch):
        entries = []
        for path, look in group:
            if look.error:
                entries.append((path, look.error))
                continue
            quality = run.judge.judge_measures(look.measures)
            entries.append(SeenFrame(path, look.mtime, look.shape, quality,
                                     look.candidates if quality.good else []))
        groups.append(entries)
    return groups


def seen_of(group: list) -> list[SeenFrame]:
    return [entry for entry in group if isinstance(entry, SeenFrame)]


def judge_ready(experiment: Experiment, tasks: Shards, e: int, identity: tuple,
                frames_per_batch: int, token: str):
    """Judges the shards whose frames and those of every shard before have been looked at, and
    sends each to be classified."""
    run = experiment.run
    while experiment.next_judged in experiment.looked:
        i = experiment.next_judged
        paths = experiment.shards[i]
        groups = judge_groups(run, paths, experiment.looked.pop(i), frames_per_batch)
        experiment.judged[i] = groups
        requests = [[(os.path.abspath(f.path), f.candidates) for f in seen_of(group)]
                    for group in groups]
        tasks.submit(("classify", e, i), f"shard {i} ({paths[0]} to {paths[-1].name})",
                     classify_shard, identity, requests, run.batch_size, run.threshold,
                     run.reject, experiment.widest, key=f"gacrystal-classify-{token}-{e}-{i}",
                     priority=CLASSIFY_FIRST)
        for group in groups:
            crops = sum(c.in_focus for f in seen_of(group) for c in f.candidates)
            if crops:
                experiment.widest = max(experiment.widest, min(crops, run.batch_size))
        experiment.next_judged += 1


def record_ready(experiment: Experiment, bar):
    """Records the shards classified whose shards before have all been recorded, in order: per
    group, its unreadable frames reported, then its frames recorded (as Monitor.process does)."""
    run = experiment.run
    while experiment.next_recorded in experiment.classified:
        i = experiment.next_recorded
        started = time.perf_counter()
        for group, records in zip(experiment.judged.pop(i), experiment.classified.pop(i)):
            for entry in group:
                if not isinstance(entry, SeenFrame):
                    run.report_unreadable(*entry)
            run.record_frames(seen_of(group), records)
        run.lap("write", started)
        experiment.saved()
        bar.update(len(experiment.shards[i]))
        experiment.next_recorded += 1


def monitor_on_cluster(client, experiments: list[Experiment], identity: tuple,
                       frames_per_batch: int, shard_batches: int, progress: bool = True) -> float:
    """Monitors each experiment's frames to do on the client's workers into its Monitor, which
    records them as one process would; returns the seconds it took."""
    started = time.perf_counter()
    size = frames_per_batch * shard_batches
    token = uuid.uuid4().hex[:12]  # the run's task keys: never another run's results
    for experiment in experiments:
        experiment.shards = [experiment.todo[i:i + size]
                             for i in range(0, len(experiment.todo), size)]
    shards = sum(len(experiment.shards) for experiment in experiments)
    print(f"{shards} shards of up to {size} frames"
          + (f" from {len(experiments)} experiments" if len(experiments) > 1 else ""))
    tasks = Shards(client, "monitor those frames in one process to see why")
    for e, experiment in enumerate(experiments):
        run = experiment.run
        for i, paths in enumerate(experiment.shards):
            tasks.submit(("look", e, i), f"shard {i} ({paths[0]} to {paths[-1].name})",
                         look_at_shard, [os.path.abspath(p) for p in paths], run.tile_size,
                         run.min_area, key=f"gacrystal-look-{token}-{e}-{i}")
    bar = progress_bar(sum(len(x.todo) for x in experiments), "frames", unit="frame",
                       enabled=progress)
    for (step, e, i), (result, seconds) in tasks:
        experiment = experiments[e]
        for name, value in seconds.items():
            experiment.run.seconds[name] += value
        if step == "look":
            experiment.looked[i] = result
            judge_ready(experiment, tasks, e, identity, frames_per_batch, token)
        else:
            experiment.classified[i] = result
            record_ready(experiment, bar)
    bar.close()
    return time.perf_counter() - started
