"""Watches a crystallization for PG impurity in whole probe frames: finds the particles in each
frame, labels them CEX, PG or UNKNOWN, writes per-particle and per-frame tables, a trend plot and a
page, and raises an alarm when PG has appeared.

    python GAmonitor.py --demo                                     # synthetic frames, demo model
    python GAmonitor.py --frames FOLDER --weights weights/model.keras --out monitor
    python GAmonitor.py --frames FOLDER --watch                    # a folder the probe writes into
    python GAmonitor.py --frames FOLDER --um_per_px 1.2 --interval 10
    python GAmonitor.py --frames FOLDER --weights georgia          # the original's release
    python GAmonitor.py --frames EXPERIMENTS --out monitor         # each sub-folder into monitor/NAME/
    python GAmonitor.py --frames FOLDER --cluster local:4          # on Dask, 4 processes

Output in OUT/: particles.csv (one row per candidate region), frames.csv (counts, PG fraction
with its 95% Wilson interval, PG area fraction, the alarm), overlays/ (frames with boxes), trend.png
and monitor.html. A second run into the same OUT goes on where the first stopped. A folder of
experiment folders (sub-folders of frames, no frames of its own) is monitored one experiment after
another (with --cluster, all at once), each into OUT/<its name>/ as if run on its own. The exit
status is 3 when the alarm has fired (in any experiment; 0 with --demo), else 1 when a frame could
not be read, else 0.
How candidates are found and counted: gacrystal/candidates.py and gacrystal/monitoring/.
"""
from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

from gacrystal.cli import layer_recipes, parse_settings, progress_bar, run_main
from gacrystal.errors import UserError
from gacrystal.images import list_images

# --- settings (edit here, or override on the command line with the same names) ---
frames = "images/frames"  # folder of whole probe frames (e.g. the Kaggle Raw pg/ folder), or of experiment folders of frames
weights = "weights/model.keras"  # .keras, .h5, .onnx (or int8 .onnx) file, or georgia / georgia-onnx (downloaded once)
out = "monitor"  # folder for the tables, overlays, trend.png and monitor.html
demo = False  # monitor a synthetic spiking run with the demo model (trained first if missing)
# finding particles
min_area = 3000  # px: smaller bright blobs are not agglomerates (needle crossings)
tile_size = 0  # px side of the tiles over the needle field; 0: the model card's crop size
um_per_px = 0.0  # the probe's scale, to also give sizes in µm; 0: px only
window_frames = 10  # good frames the size distributions over a window pool (sizes.csv)
# time
time_source = "auto"  # auto (times CSV, else the image's EXIF time, else file time), times, exif, mtime, order
times = ""  # CSV with columns frame (file name) and time (ISO 8601, or seconds)
interval = 10.0  # seconds between frames, for time_source order (typing --interval selects it)
# the alarm: a CUSUM on the PG count per frame
baseline_frames = 10  # the first frames, assumed free of PG, give the baseline
alarm_allowance = 0.75  # baseline spreads subtracted per frame (tolerance for noise)
false_alarm_every = "24h"  # the threshold is chosen for one false alarm this often (8h, 7d, ...)
alarm_threshold = 0.0  # the CUSUM above this fires the alarm; 0: chosen for false_alarm_every
# watching a folder
watch = False  # keep running and process frames as the probe writes them (Ctrl-C stops)
poll_s = 2.0  # seconds between looks at the folder
stop_after_idle = 0.0  # watch mode: stop after this many seconds without a new frame; 0: never
retries = 3  # watch mode: polls a frame may fail to read before it is reported unreadable
# plant integration
opcua = ""  # serve the run's state on OPC UA at this URL, e.g. opc.tcp://127.0.0.1:4840/gacrystal/; empty: off
opcua_certificate = ""  # with opcua_private_key: encrypt (Basic256Sha256); a DER or PEM certificate
opcua_private_key = ""  # the certificate's private key (PEM)
opcua_users = ""  # a file of name:password lines: only these users may connect (no anonymous)
# corrections back into training (reads OUT, monitors nothing)
export_crops = ""  # write OUT's counted regions as crops into this folder (cex/, pg/), then stop
corrections = ""  # with export_crops: a corrections.csv of verdicts (right, wrong, neither)
# output and speed
overlay_every = 10  # an overlay PNG of every N-th frame (and of the alarm's frame); 0: none
batch_size = 32  # crops per forward pass
frames_per_batch = 4  # frames whose crops share batches
threshold = 0.5  # P(PG) at or above this is PG
reject = True  # regions unlike the training images are UNKNOWN (not counted as CEX or PG)
overwrite = False  # replace an earlier run's results in OUT instead of going on with it
cluster = ""  # monitor finished folders on Dask: local:N (N worker processes here) or tcp://HOST:8786 (a running scheduler); empty: in this process
shard_batches = 4  # with --cluster: frame batches (frames_per_batch frames each) per shard, the work a lost worker redoes
# --- end of settings

DEMO = {"frames": "images/frames-synthetic", "out": "monitor-demo"}
DEMO_FRAMES, DEMO_SPIKE = 60, 31  # a spiking run: pure CEX, then PG added from frame 31 on
PAGE_REFRESH_S = 10  # a watch's monitor.html reloads itself this often (it is redrawn as often)


def check_settings(s: dict, given: set):
    """Refuses settings out of range, before any model is loaded; resolves the time source once
    (gacrystal.monitoring.clock.wanted_source) into s["time_source"]."""
    from gacrystal.classifier import check_weights
    from gacrystal.monitoring.arl import parse_duration
    from gacrystal.monitoring.clock import TIME_SOURCES, read_times, wanted_source
    if s["time_source"] not in TIME_SOURCES:
        raise UserError(f"time_source must be one of {', '.join(TIME_SOURCES)}. "
                        f"Received: time_source={s['time_source']}")
    if s["time_source"] == "times" and not s["times"]:
        raise UserError("time_source=times needs --times FILE.csv (columns frame, time)")
    if s["times"] and not Path(s["times"]).is_file():
        raise UserError(f"no times CSV at times={s['times']}")
    if s["times"]:
        read_times(s["times"])  # a malformed table is reported now, not mid-run
    for name in ("min_area", "batch_size", "frames_per_batch", "retries", "baseline_frames",
                 "window_frames", "shard_batches"):
        if s[name] < 1:
            raise UserError(f"{name} must be at least 1. Received: {name}={s[name]}")
    for name in ("um_per_px", "interval", "poll_s", "stop_after_idle", "overlay_every",
                 "alarm_allowance", "alarm_threshold", "tile_size"):
        if s[name] < 0:
            raise UserError(f"{name} must be 0 or more. Received: {name}={s[name]}")
    if 0 < s["tile_size"] < 32:
        raise UserError(f"tile_size must be 0 (the model card's) or at least 32. "
                        f"Received: tile_size={s['tile_size']}")
    if not 0 < s["threshold"] < 1:
        raise UserError(f"threshold must be between 0 and 1 (exclusive). "
                        f"Received: threshold={s['threshold']}")
    try:
        parse_duration(s["false_alarm_every"])
    except ValueError:
        raise UserError(f"false_alarm_every must be a duration such as 8h, 24h, 7d or 90min. "
                        f"Received: false_alarm_every={s['false_alarm_every']}") from None
    if s["alarm_threshold"] and "false_alarm_every" in given:
        print(f"note: alarm_threshold={s['alarm_threshold']} is used; false_alarm_every only "
              "chooses a threshold when alarm_threshold is 0")
    s["time_source"] = wanted_source(s["time_source"], s["times"], "interval" in given)
    if s["opcua"]:
        from gacrystal.monitoring.opcua import check_url
        check_url(s["opcua"])
        for name in ("opcua_certificate", "opcua_private_key", "opcua_users"):
            if s[name] and not Path(s[name]).is_file():
                raise UserError(f"no file at {name}={s[name]}")
    if s["cluster"]:
        from gacrystal.cluster import check_cluster  # no Dask yet
        check_cluster(s["cluster"])
        if s["watch"]:
            raise UserError("--cluster monitors finished folders; --watch runs in one process: "
                            "drop --cluster for it")
    if s["demo"]:
        return
    folder = Path(s["frames"])
    if not folder.is_dir():
        raise UserError(f"no frame folder at frames={folder}; put the probe's frames there, pass "
                        "--frames FOLDER, or try `python GAmonitor.py --demo`")
    from gacrystal.monitoring.watch import experiment_folders
    experiments = [] if s["watch"] else experiment_folders(folder)
    if not s["watch"] and not list_images(folder) and not experiments:
        raise UserError(f"no PNG, JPEG, BMP or TIFF frames in {folder}, nor sub-folders of frames "
                        "(one per experiment) (to wait for a probe writing into it, add --watch)")
    if experiments and s["opcua"]:
        raise UserError(f"{folder} holds experiment folders; --opcua serves one run: monitor "
                        "them without it, or one experiment at a time (--frames FOLDER/NAME)")
    check_weights(s["weights"])  # a file, or published weights by name, as GAinfer.py takes them


def experiment_settings(s: dict) -> list[dict]:
    """The settings of each run: s itself for a folder of frames; for a folder of experiment
    folders (gacrystal.monitoring.watch.experiment_folders), those of each as if run on its own:
    --frames FRAMES/NAME --out OUT/NAME."""
    from gacrystal.monitoring.watch import experiment_folders
    folders = [] if s["watch"] else experiment_folders(Path(s["frames"]))
    return [dict(s, frames=str(f), out=str(Path(s["out"], f.name))) for f in folders] or [s]


def make_demo_inputs(weights: str, frames_dir: str):
    """--demo: the demo model (trained as GAmain.py --demo does, if weights/ has none) and a
    synthetic spiking run of frames (written once)."""
    from gacrystal.frames import TRUTH_FILE, generate_frames
    if not Path(weights).is_file():
        print(f"demo: no model at {weights}; training the demo model first (GAmain.py --demo)")
        status = subprocess.call([sys.executable, str(Path(__file__).with_name("GAmain.py")),
                                  "--demo"])
        if status or not Path(weights).is_file():
            raise UserError(f"the demo model could not be trained (GAmain.py --demo exited with "
                            f"{status}); run it on its own to see why")
    if not Path(frames_dir, TRUTH_FILE).is_file():
        print(f"demo: writing {DEMO_FRAMES} synthetic frames to {frames_dir} "
              f"(pure CEX, then PG from frame {DEMO_SPIKE} on)")
        generate_frames(frames_dir, DEMO_FRAMES, DEMO_SPIKE)


def check_out(s: dict, model: Path) -> dict:
    """OUT must be new, hold an earlier run on the same frames and model timed the same way
    (which goes on), or be cleared with --overwrite. Returns what identifies this run."""
    from gacrystal.monitoring.state import load_state
    identity = {"frames": str(Path(s["frames"]).resolve()), "weights": str(model.resolve())}
    state = load_state(Path(s["out"]))
    if not state or s["overwrite"]:
        return identity
    differs = [k for k in identity if state.get(k) != identity[k]]
    if differs:
        raise UserError(f"{s['out']} holds a run on other {' and '.join(differs)} "
                        f"({', '.join(str(state.get(k)) for k in differs)}); choose another "
                        "--out, or pass --overwrite to replace it")
    timed_by, wanted = state.get("time_source"), s["time_source"]
    if timed_by and wanted != "auto" and wanted != timed_by:
        raise UserError(f"the run in {s['out']} takes its times from {timed_by}, not {wanted}; "
                        "run again without --time_source/--times/--interval to go on with it, "
                        "or pass --overwrite to start again")
    if timed_by == "times" and not s["times"]:
        raise UserError(f"the run in {s['out']} takes its times from a --times CSV; pass it "
                        f"again (--times {state['settings'].get('times', 'FILE.csv')})")
    return identity


def start_opcua(s: dict):
    """--opcua URL: the OPC UA server with the run's variables, started (None without it)."""
    if not s["opcua"]:
        return None
    from gacrystal.monitoring.opcua import OpcUaServer
    server = OpcUaServer(s["opcua"], Path(s["out"]).name, s["opcua_certificate"],
                         s["opcua_private_key"], s["opcua_users"])
    server.start()
    print(f"OPC UA: serving the run's state at {s['opcua']} (Objects/GAmonitor/"
          f"{Path(s['out']).name}; read-only)")
    return server


def open_run(s: dict, classifier, card: dict, server=None):
    """The Monitor for OUT: a new run, or the earlier one in OUT taken up where it stopped;
    with an OPC UA server, each frame is published on it. classifier is None on a cluster (its
    workers classify); card is the model's."""
    from gacrystal.candidates import DEFAULT_TILE_SIZE
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor
    from gacrystal.monitoring.state import clear_outputs, load_state
    out = Path(s["out"])
    if s["overwrite"]:
        clear_outputs(out)
    clock = FrameClock(s["time_source"], s["times"] or None, s["interval"])
    from gacrystal.monitoring.arl import parse_duration
    alarm = CusumRule(s["baseline_frames"], s["alarm_allowance"], s["alarm_threshold"] or None,
                      false_alarm_every_s=parse_duration(s["false_alarm_every"]))
    tile_size = s["tile_size"] or int(card.get("crop_size") or DEFAULT_TILE_SIZE)
    run = Monitor(classifier, out, clock, alarm, tile_size=tile_size, min_area=s["min_area"],
                  um_per_px=s["um_per_px"], batch_size=s["batch_size"],
                  threshold=s["threshold"], reject=s["reject"],
                  overlay_every=s["overlay_every"], on_alarm=announce,
                  on_figures=lambda figures: print(f"baseline learnt: {figures.describe()}"),
                  window_frames=s["window_frames"], latest_overlay=s["watch"])
    if server is not None:
        run.on_frame = lambda frame: server.publish(frame, run)
    run.resume(load_state(out), Path(s["frames"]))  # the judge from the last frames too
    if run.frames:
        print(f"going on with the run in {out}: {len(run.frames)} frames already done")
    return run


def when(frame) -> str:
    """A frame's time, or how long after the first frame it came."""
    from gacrystal.monitoring.records import time_text
    return time_text(frame.time) or f"{frame.elapsed_s / 60:.1f} min after the first frame"


def announce(frame):
    """Prints the alarm, once, when it fires."""
    print(f"\nALARM: PG has appeared: {frame.frame}, {when(frame)} ({frame.summary.pg} PG "
          "regions in this frame)", flush=True)


def save_run_state(run, identity: dict, s: dict):
    from gacrystal.monitoring.state import save_state
    save_state(run.out, {**identity, **run.clock.state(), "tile_size": run.tile_size,
                         "settings": s})


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


def watch_folder(run, s: dict, save):
    """--watch: frames as the probe writes them, until Ctrl-C or --stop_after_idle; the trend
    and the page redrawn as they come, at most every 10 s."""
    from gacrystal.monitoring.watch import watch
    print(f"watching {s['frames']} (Ctrl-C stops; running again goes on from here)")
    last_drawn, last_count = 0.0, len(run.frames)

    def after_poll(processed: int):
        nonlocal last_drawn, last_count
        save()
        if len(run.frames) > last_count:
            print(f"{len(run.frames)} frames done", flush=True)
            last_count = len(run.frames)
        if time.time() - last_drawn > 10:
            write_pictures(run, s, alarm_text(run), live=True)
            last_drawn = time.time()
    watch(run, Path(s["frames"]), s["poll_s"], s["retries"], s["frames_per_batch"],
          s["stop_after_idle"], on_poll=after_poll)


def report_run(run, done: int, out: str, page: Path, working: str = "while working"):
    busy = sum(run.seconds.values())  # not the waits of a watch
    print(f"\n{done} frames processed ({done / max(busy, 1e-9):.2f} frames/s {working}); "
          f"{len(run.frames)} in {Path(out, 'frames.csv')}")
    if done:
        print(f"time spent: {run.time_shares()}")
    if not run.alarm_state.fired or run.alarm_state.fired_at < len(run.frames) - done:
        print(alarm_text(run))  # an alarm that fired in this run was printed when it fired
    print(f"see {page} (trend, overlays, frames, detections to review)")


def write_pictures(run, s: dict, alarm_text: str, live: bool):
    """trend.png, monitor.html (live: reloading itself, for a watch) and the corrections.csv
    template of the regions it shows (never over the user's marks)."""
    from gacrystal.monitoring.corrections import write_template
    from gacrystal.monitoring.overlay import OVERLAYS
    from gacrystal.monitoring.page import write_page
    from gacrystal.monitoring.trend import TREND, plot_trend
    if run.frames:
        plot_trend(run.frames, run.out / TREND)
    highest, uncertain = run.picks.rows()
    write_template(run.out, highest + [p for p in uncertain if p not in highest])
    return write_page(run.out, run.frames, s, alarm_text, Path(s["frames"]), run.out / OVERLAYS,
                      run.picks, run.alarm.figures, refresh_s=PAGE_REFRESH_S if live else 0)


def alarm_text(run) -> str:
    if not run.alarm_state.fired:
        return (f"No alarm in {len(run.frames)} frames: the PG count has not risen above its "
                f"baseline by enough to raise it (the alarm's figures say how fast a rise is seen).")
    frame = run.frames[run.alarm_state.fired_at]
    return f"ALARM: PG has appeared at {frame.frame}, {when(frame)}."


def export_for_training(s: dict):
    """--export_crops DIR: OUT's counted regions as training crops, corrected where marked
    (gacrystal.monitoring.corrections); monitors nothing."""
    from gacrystal.monitoring.corrections import export_run
    counts, marked = export_run(Path(s["out"]), Path(s["export_crops"]),
                                Path(s["corrections"]) if s["corrections"] else None)
    dest = s["export_crops"]
    print(f"exported to {dest}/cex and {dest}/pg: {counts['written']} crops written, "
          f"{counts['already there']} already there, {counts['left out']} left out (UNKNOWN or "
          f"marked neither), {counts['frames missing']} from frames no longer readable; "
          f"{marked} regions corrected by {s['corrections'] or 'no corrections file'}")
    print(f"next: python GAsplit.py --source {dest} --dest {dest}-split, then python GAmain.py "
          f"--data {dest}-split --init_weights {s['weights']} (fine-tune the model on them)")
    return 0


def start_run(s: dict, identity: dict, classifier, card: dict, can_reject: bool):
    """Opens the run in s["out"] (with its OPC UA server), says what it monitors and saves its
    identity before the first row; returns (run, save, frames done before, server)."""
    server = start_opcua(s)
    run = open_run(s, classifier, card, server)
    print(f"frames: {s['frames']}; candidates: blobs of at least {s['min_area']} px and "
          f"{run.tile_size} px tiles; model: {s['weights']}")
    if s["reject"] and not can_reject:
        print("note: this model has no out-of-distribution statistics (ood.npz) beside it: "
              "bubbles and debris get CEX or PG, never UNKNOWN")
    save = functools.partial(save_run_state, run, identity, s)
    save()  # before the first row: a crash in the first frames still leaves the run's identity
    return run, save, len(run.frames), server


def finish_run(s: dict, run, save, before: int, server, working: str = "while working"):
    """Also on Ctrl-C: what was done is in the tables and the pictures."""
    save()
    page = write_pictures(run, s, alarm_text(run), live=False)
    report_run(run, len(run.frames) - before, s["out"], page, working)
    if server is not None:
        server.stop()


def monitor_here(runs: list[tuple[dict, dict]], model: Path) -> list:
    """Each run in this process, one after the other; returns their Monitors."""
    from gacrystal.classifier import load_classifier
    classifier = load_classifier(model)
    monitors = []
    for s, identity in runs:
        classifier.pad_short_batches_to(0)  # each run's last bits as when monitored on its own
        run, save, before, server = start_run(s, identity, classifier, classifier.card,
                                              classifier.can_reject)
        try:
            if s["watch"]:
                watch_folder(run, s, save)
            else:
                monitor_folder(run, Path(s["frames"]), s["frames_per_batch"], save)
        finally:
            finish_run(s, run, save, before, server)
        monitors.append(run)
    return monitors


def monitor_on_dask(cluster: str, runs: list[tuple[dict, dict]], model: Path,
                    frames_per_batch: int, shard_batches: int) -> list:
    """--cluster: every run's frames in shards on Dask's workers, which load the model (this
    process does not), recorded here in order (gacrystal/monitoring/shards.py); returns the
    Monitors."""
    from gacrystal.cluster import connect, model_identity, tell_workers
    from gacrystal.monitoring.shards import Experiment, model_facts, monitor_on_cluster
    from gacrystal.monitoring.watch import new_frames
    identity = model_identity(model, trust_model=False)
    started = []
    with connect(cluster) as client:
        tell_workers(client, "each loads the model once")
        facts = model_facts(client, identity)
        try:
            for s, run_identity in runs:
                run, save, before, server = start_run(s, run_identity, None, facts["card"],
                                                      facts["can_reject"])
                started.append((s, Experiment(run, new_frames(Path(s["frames"]), run), save),
                                before, server))
            seconds = monitor_on_cluster(client, [x for _, x, _, _ in started], identity,
                                         frames_per_batch, shard_batches)
            done = sum(len(x.todo) for _, x, _, _ in started)
            print(f"cluster: {done} frames in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} "
                  "frames/s)")
        finally:
            for s, experiment, before, server in started:
                finish_run(s, experiment.run, experiment.saved, before, server,
                           working="per worker while working")
    return [experiment.run for _, experiment, _, _ in started]


def main(argv=None):
    s, given = parse_settings(__file__, "Watch a crystallization for PG in whole probe frames.",
                              argv)
    if s["demo"]:
        s, _ = layer_recipes(s, given, [("demo", DEMO)])
    if s["export_crops"]:
        return export_for_training(s)
    if s["corrections"]:
        raise UserError("corrections is read by --export_crops; pass --export_crops DIR too")
    check_settings(s, given)
    if s["demo"]:
        make_demo_inputs(s["weights"], s["frames"])
    from gacrystal.classifier import model_file
    from gacrystal.files import exclusive_lock
    with exclusive_lock(s["out"], "another monitoring run"):
        model = model_file(s["weights"])  # published weights by name: downloaded once
        runs = [(run_s, check_out(run_s, model)) for run_s in experiment_settings(s)]
        if s["cluster"]:
            monitors = monitor_on_dask(s["cluster"], runs, model, s["frames_per_batch"],
                                       s["shard_batches"])
        else:
            monitors = monitor_here(runs, model)
    if s["demo"]:
        print(f"next: compare with the truth in {Path(s['frames'], 'truth.csv')} (spike at frame "
              f"{DEMO_SPIKE}); monitor your own frames with --frames FOLDER")
        return 0
    from gacrystal.monitoring.alarm import ALARM_EXIT_STATUS
    if any(run.alarm_state.fired for run in monitors):
        return ALARM_EXIT_STATUS
    return 1 if any(run.still_unreadable() for run in monitors) else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
