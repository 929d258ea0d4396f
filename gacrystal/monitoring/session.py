"""A monitoring run from start to end, as GAmonitor.py runs it: the Monitor opened in its output
folder (new, or taken up where it stopped), its frames processed here or on a Dask cluster, or
watched as a probe writes them, then the pictures, the page and the report.

    options = RunOptions.from_settings(settings)      # GAmonitor.py's settings block, resolved
    monitors = monitor_here([(options, identity)], model_path)

Each experiment of a folder of experiment folders is one run with options of its own (its frames,
its output folder). The settings dict itself is only written (monitor.json, the page's table).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path

from gacrystal import ood
from gacrystal.classifier import synthetic_only_note, training_data_of
from gacrystal.cli import progress_bar
from gacrystal.crops_or_frames import crop_warning

PAGE_REFRESH_S = 10  # a watch's monitor.html reloads itself this often (it is redrawn as often)


@dataclass(frozen=True)
class RunOptions:
    """What one monitoring run reads of GAmonitor.py's settings (the same names)."""
    frames: str
    out: str
    weights: str
    overwrite: bool
    time_source: str
    times: str
    interval: float
    baseline_frames: int
    alarm_allowance: float
    alarm_threshold: float
    false_alarm_every: str
    tile_size: int
    min_area: int
    um_per_px: float
    window_frames: int
    batch_size: int
    frames_per_batch: int
    threshold: float
    reject: bool
    adapt: bool
    adapt_data: str
    overlay_every: int
    review_regions: int
    watch: bool
    poll_s: float
    retries: int
    stop_after_idle: float
    opcua: str
    opcua_certificate: str
    opcua_private_key: str
    opcua_users: str
    settings: dict  # every setting, as monitor.json and the page record them

    @classmethod
    def from_settings(cls, settings: dict) -> "RunOptions":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "settings"]
        return cls(**{name: settings[name] for name in names}, settings=dict(settings))


def start_opcua(options: RunOptions):
    """--opcua URL: the OPC UA server with the run's variables, started (None without it)."""
    if not options.opcua:
        return None
    from gacrystal.monitoring.opcua import OpcUaServer
    name = Path(options.out).name
    server = OpcUaServer(options.opcua, name, options.opcua_certificate,
                         options.opcua_private_key, options.opcua_users)
    server.start()
    print(f"OPC UA: serving the run's state at {options.opcua} (Objects/GAmonitor/{name}; "
          "read-only)")
    return server


def open_run(options: RunOptions, classifier, card: dict, server=None):
    """The Monitor for the output folder: a new run, or the earlier one there taken up where it
    stopped; with an OPC UA server, each frame is published on it. classifier is None on a
    cluster (its workers classify); card is the model's."""
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor
    from gacrystal.monitoring.arl import parse_duration
    from gacrystal.monitoring.candidates import DEFAULT_TILE_SIZE
    from gacrystal.monitoring.state import clear_outputs, load_state
    out = Path(options.out)
    if options.overwrite:
        clear_outputs(out)
    clock = FrameClock(options.time_source, options.times or None, options.interval)
    alarm = CusumRule(options.baseline_frames, options.alarm_allowance,
                      options.alarm_threshold or None,
                      false_alarm_every_s=parse_duration(options.false_alarm_every))
    tile_size = options.tile_size or int(card.get("crop_size") or DEFAULT_TILE_SIZE)
    adapter = baseline_adapter(options, classifier, out)
    run = Monitor(classifier, out, clock, alarm, tile_size=tile_size, min_area=options.min_area,
                  um_per_px=options.um_per_px, batch_size=options.batch_size,
                  threshold=options.threshold, reject=options.reject,
                  overlay_every=options.overlay_every, on_alarm=announce,
                  on_figures=tell_baseline,
                  window_frames=options.window_frames, latest_overlay=options.watch,
                  adapter=adapter, review_regions=options.review_regions)
    if server is not None:
        run.on_frame = lambda frame: server.publish(frame, run)
    run.resume(load_state(out), Path(options.frames))  # the judge from the last frames too
    if run.frames:
        print(f"going on with the run in {out}: {len(run.frames)} frames already done")
    return run


def baseline_adapter(options: RunOptions, classifier, out: Path):
    """--adapt: the adapter, with the fit of an earlier run in OUT where there is one. A run in
    OUT counted one way goes on that way: --adapt typed on a run counted without it is refused,
    and a run that was adapted goes on adapted."""
    from gacrystal.errors import UserError
    from gacrystal.monitoring.adaptation import (Adaptation, BaselineAdapter, fitting_folders,
                                                 training_crops)
    from gacrystal.monitoring.outputs import ADAPTATION_JSON
    from gacrystal.monitoring.tables import FRAMES_CSV, iter_rows
    earlier = Adaptation.load(out)
    counted = any(True for _ in iter_rows(out / FRAMES_CSV))
    if options.adapt and counted and earlier is None:
        raise UserError(f"the run in {out} was counted without --adapt; go on without it, or "
                        "pass --overwrite to start again adapted")
    if not (options.adapt or earlier):
        return None
    if classifier is None:
        raise UserError("--adapt fits in the process that records the frames; drop --cluster "
                        f"for this run ({out})")
    if earlier is not None and not options.adapt:
        print(f"going on adapted, as the run in {out} was ({out / ADAPTATION_JSON})")
    folders = None if earlier else fitting_folders(
        classifier, options.adapt_data or training_data_of(classifier.path))
    return BaselineAdapter(lambda: training_crops(classifier, *folders, options.batch_size),
                           options.baseline_frames, options.threshold, out, earlier)


def tell_baseline(figures):
    print(f"baseline learnt: {figures.describe()}")
    if figures.interval_warning:
        print(figures.interval_warning)


def when(frame) -> str:
    """A frame's time, or how long after the first frame it came."""
    from gacrystal.monitoring.records import time_text
    return time_text(frame.time) or f"{frame.elapsed_s / 60:.1f} min after the first frame"


def announce(frame):
    """Prints the alarm, once, when it fires."""
    print(f"\nALARM: PG has appeared: {frame.frame}, {when(frame)} ({frame.summary.pg} PG "
          "regions in this frame)", flush=True)


def alarm_text(run) -> str:
    if learning := run.alarm.learning():
        return (f"No alarm: the baseline is not learnt yet ({learning}); the alarm watches the "
                "frames after it.")
    if not run.alarm_state.fired:
        return (f"No alarm in {len(run.frames)} frames: the PG count has not risen above its "
                f"baseline by enough to raise it (the alarm's figures say how fast a rise is seen).")
    frame = run.frames[run.alarm_state.fired_at]
    return f"ALARM: PG has appeared at {frame.frame}, {when(frame)}."


def save_run_state(run, identity: dict, settings: dict):
    from gacrystal.monitoring.state import save_state
    save_state(run.out, {**identity, **run.clock.state(), "tile_size": run.tile_size,
                         "settings": settings})


def monitor_folder(run, folder: Path, frames_per_batch: int, save):
    """Every frame of a finished folder not yet done, with a progress bar."""
    from gacrystal.monitoring.watch import in_groups, new_frames
    todo = new_frames(folder, run)
    bar = progress_bar(len(todo), "frames", unit="frame")
    for group in in_groups(todo, frames_per_batch):
        run.process(group)
        save()
        bar.update(len(group))
    bar.close()


def watch_folder(run, options: RunOptions, save):
    """--watch: frames as the probe writes them, until Ctrl-C or --stop_after_idle; the trend
    and the page redrawn as they come, at most every PAGE_REFRESH_S."""
    from gacrystal.monitoring.watch import watch
    print(f"watching {options.frames} (Ctrl-C stops; running again goes on from here)")
    last_drawn, last_count = 0.0, len(run.frames)

    def after_poll(processed: int):
        nonlocal last_drawn, last_count
        save()
        if len(run.frames) > last_count:
            print(f"{len(run.frames)} frames done", flush=True)
            last_count = len(run.frames)
        if time.time() - last_drawn > PAGE_REFRESH_S:
            write_pictures(run, options, live=True)
            last_drawn = time.time()
    watch(run, Path(options.frames), options.poll_s, options.retries, options.frames_per_batch,
          options.stop_after_idle, on_poll=after_poll)


def write_pictures(run, options: RunOptions, live: bool) -> Path:
    """trend.png, monitor.html (live: reloading itself, for a watch) and the corrections.csv
    template of the regions it shows (never over the user's marks). Returns the page's path."""
    from gacrystal.monitoring.corrections import write_template
    from gacrystal.monitoring.overlay import OVERLAYS
    from gacrystal.monitoring.page import write_page
    from gacrystal.monitoring.trend import TREND, plot_trend
    if run.frames:
        plot_trend(run.frames, run.out / TREND)
    offered = run.picks.offered()
    write_template(run.out, [region for region, _ in offered])
    return write_page(run.out, run.frames, options.settings, alarm_text(run), Path(options.frames),
                      run.out / OVERLAYS, offered, run.alarm.figures,
                      refresh_s=PAGE_REFRESH_S if live else 0, adapted=adapted_text(run))


def adapted_text(run) -> str:
    """What the run's decision was fitted on (--adapt), or ""."""
    fitted = run.adapter.adaptation if run.adapter is not None else None
    return fitted.describe() if fitted is not None and fitted.facts else ""


def report_run(run, done: int, page: Path, working: str = "while working"):
    busy = sum(run.seconds.values())  # not the waits of a watch
    print(f"\n{done} frames processed ({done / max(busy, 1e-9):.2f} frames/s {working}); "
          f"{len(run.frames)} in {run.out / 'frames.csv'}")
    if done:
        print(f"time spent: {run.time_shares()}")
    if run.adapter is not None and (held := run.adapter.unrecorded()):
        print(f"{held} frames held for --adapt are not recorded: it fits on "
              f"{run.adapter.frames_needed} good frames ({run.adapter.waiting}); they are done "
              "again when the run goes on")
    if not run.alarm_state.fired or run.alarm_state.fired_at < len(run.frames) - done:
        print(alarm_text(run))  # an alarm that fired in this run was printed when it fired
    print(f"see {page} (trend, overlays, frames, detections to review)")


def start_run(options: RunOptions, identity: dict, classifier, card: dict, can_reject: bool):
    """Opens the run in its output folder (with its OPC UA server), says what it monitors and
    saves its identity before the first row; returns (run, save, frames done before, server)."""
    server = start_opcua(options)
    run = open_run(options, classifier, card, server)
    print(f"frames: {options.frames}; candidates: blobs of at least {options.min_area} px and "
          f"{run.tile_size} px tiles; model: {options.weights}"
          + (f" on {classifier.engine}" if classifier is not None else ""))
    if note := synthetic_only_note(card):
        print(note)
    if run.adapter is not None and run.adapter.adaptation is None:
        print(f"adapting (--adapt): the first {options.baseline_frames} good frames are taken to "
              "be free of PG and held; the decision is fitted to them, then they and every later "
              "frame are counted with it")
    if warning := crop_warning(options.frames, card):
        print(warning)
    if options.reject and not can_reject:
        print("note: this model has no out-of-distribution statistics (ood.npz) beside it: "
              f"bubbles and debris get CEX or PG, never UNKNOWN. {ood.HOW_TO_ADD}")
    save = functools.partial(save_run_state, run, identity, options.settings)
    save()  # before the first row: a crash in the first frames still leaves the run's identity
    return run, save, len(run.frames), server


def finish_run(options: RunOptions, run, save, before: int, server,
               working: str = "while working"):
    """Also on Ctrl-C: what was done is in the tables and the pictures."""
    save()
    page = write_pictures(run, options, live=False)
    report_run(run, len(run.frames) - before, page, working)
    if server is not None:
        server.stop()


def monitor_here(runs: list[tuple[RunOptions, dict]], model: Path, engine: str = "auto") -> list:
    """Each run (its options, what identifies it) in this process, one after the other; returns
    their Monitors."""
    from gacrystal.classifier import load_classifier
    classifier = load_classifier(model, engine=engine)
    monitors = []
    for options, identity in runs:
        classifier.pad_short_batches_to(0)  # each run's last bits as when monitored on its own
        run, save, before, server = start_run(options, identity, classifier, classifier.card,
                                              classifier.can_reject)
        try:
            if options.watch:
                watch_folder(run, options, save)
            else:
                monitor_folder(run, Path(options.frames), options.frames_per_batch, save)
        finally:
            finish_run(options, run, save, before, server)
        monitors.append(run)
    return monitors


def monitor_on_dask(cluster: str, runs: list[tuple[RunOptions, dict]], model: Path,
                    frames_per_batch: int, shard_batches: int, engine: str = "auto") -> list:
    """--cluster: every run's frames in shards on Dask's workers, which load the model (this
    process does not), recorded here in order (gacrystal/monitoring/shards.py); returns the
    Monitors."""
    from gacrystal.cluster import connect, model_identity, tell_workers
    from gacrystal.monitoring.shards import Experiment, model_facts, monitor_on_cluster
    from gacrystal.monitoring.watch import new_frames
    identity = model_identity(model, trust_model=False, engine=engine)
    started = []
    with connect(cluster) as client:
        tell_workers(client, "each loads the model once")
        facts = model_facts(client, identity)
        print(f"cluster: the workers run the model on {facts['engine']}")
        try:
            for options, run_identity in runs:
                run, save, before, server = start_run(options, run_identity, None,
                                                      facts["card"], facts["can_reject"])
                started.append((options, Experiment(run, new_frames(Path(options.frames), run),
                                                    save), before, server))
            seconds = monitor_on_cluster(client, [x for _, x, _, _ in started], identity,
                                         frames_per_batch, shard_batches)
            done = sum(len(x.todo) for _, x, _, _ in started)
            print(f"cluster: {done} frames in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} "
                  "frames/s)")
        finally:
            for options, experiment, before, server in started:
                finish_run(options, experiment.run, experiment.saved, before, server,
                           working="per worker while working")
    return [experiment.run for _, experiment, _, _ in started]
