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
How candidates are found and counted: gacrystal/monitoring/candidates.py and gacrystal/monitoring/;
how a run is opened, taken up, run here or on Dask and reported: gacrystal/monitoring/session.py.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gacrystal.cli import layer_recipes, parse_settings, run_main
from gacrystal.errors import UserError
from gacrystal.images import list_images
from gacrystal.monitoring.session import RunOptions, monitor_here, monitor_on_dask

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
opcua_users = ""  # a file of users and password hashes: only they may connect (no anonymous); see add_opcua_user
add_opcua_user = ""  # instead of monitoring: add this user to the opcua_users file (asks for the password)
# review and corrections back into training
review_regions = 100  # regions monitor.html offers for review, the most telling first (docs/monitoring.md)
export_crops = ""  # reads OUT, monitors nothing: write its counted regions as crops into this folder (cex/, pg/), then stop
corrections = ""  # with export_crops: a corrections.csv of verdicts (right, wrong, CEX, PG, ...)
# output and speed
overlay_every = 10  # an overlay PNG of every N-th frame (and of the alarm's frame); 0: none
batch_size = 32  # crops per forward pass
engine = "auto"  # what runs an .onnx model: auto (OpenVINO where installed, else ONNX Runtime), onnxruntime, openvino, openvino-bf16 (faster where the CPU has bf16, and less exact)
frames_per_batch = 4  # frames whose crops share batches
threshold = 0.5  # P(PG) at or above this is PG
reject = True  # regions unlike the training images are UNKNOWN (not counted as CEX or PG)
adapt = False  # fit the decision to this run's texture on the baseline frames, which you state hold no PG (docs/monitoring.md)
adapt_data = ""  # with adapt: the split the model was trained on; empty: the one its config.json names
overwrite = False  # replace an earlier run's results in OUT instead of going on with it
cluster = ""  # monitor finished folders on Dask: local:N (N worker processes here) or tcp://HOST:8786 (a running scheduler); empty: in this process
shard_batches = 4  # with --cluster: frame batches (frames_per_batch frames each) per shard, the work a lost worker redoes
# --- end of settings

# The demo's frames are pure CEX before the spike, so its baseline is known to hold no PG: --adapt.
DEMO = {"frames": "images/frames-synthetic", "out": "monitor-demo", "adapt": True}
DEMO_FRAMES, DEMO_SPIKE = 60, 31  # a spiking run: pure CEX, then PG added from frame 31 on


def check_settings(s: dict, given: set):
    """Refuses settings out of range, before any model is loaded; resolves the time source once
    (gacrystal.monitoring.clock.wanted_source) into s["time_source"]."""
    from gacrystal.classifier import check_weights
    from gacrystal.monitoring.arl import parse_duration
    from gacrystal.monitoring.clock import TIME_SOURCES, read_times, wanted_source
    from gacrystal.onnx_io import check_engine
    if s["time_source"] not in TIME_SOURCES:
        raise UserError(f"time_source must be one of {', '.join(TIME_SOURCES)}. "
                        f"Received: time_source={s['time_source']}")
    check_engine(s["engine"])
    if s["time_source"] == "times" and not s["times"]:
        raise UserError("time_source=times needs --times FILE.csv (columns frame, time)")
    if s["times"] and not Path(s["times"]).is_file():
        raise UserError(f"no times CSV at times={s['times']}")
    if s["times"]:
        read_times(s["times"])  # a malformed table is reported now, not mid-run
    for name in ("min_area", "batch_size", "frames_per_batch", "retries", "baseline_frames",
                 "window_frames", "shard_batches", "review_regions"):
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
        from gacrystal.monitoring.opcua import check_settings as check_opcua
        check_opcua(s["opcua"], s["opcua_certificate"], s["opcua_private_key"], s["opcua_users"])
    if s["cluster"]:
        from gacrystal.cluster import check_cluster  # no Dask yet
        check_cluster(s["cluster"])
        if s["watch"]:
            raise UserError("--cluster monitors finished folders; --watch runs in one process: "
                            "drop --cluster for it")
        if s["adapt"]:
            raise UserError("--adapt fits in the process that records the frames; drop "
                            "--cluster for it")
    if s["adapt_data"] and not Path(s["adapt_data"]).is_dir():
        raise UserError(f"no folder at adapt_data={s['adapt_data']}")
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


def make_demo_inputs(weights: str, frames_dir: str, adapt: bool = False, adapt_data: str = ""):
    """--demo: the demo model (trained as GAmain.py --demo does, if weights/ has none), the
    training split --adapt fits against (checked before the frames are drawn: see
    demo_adapt_split) and a synthetic spiking run of frames (written once)."""
    from gacrystal.synthetic.frames import TRUTH_FILE, generate_frames
    if not Path(weights).is_file():
        print(f"demo: no model at {weights}; training the demo model first (GAmain.py --demo)")
        status = subprocess.call([sys.executable, str(Path(__file__).with_name("GAmain.py")),
                                  "--demo"])
        if status or not Path(weights).is_file():
            raise UserError(f"the demo model could not be trained (GAmain.py --demo exited with "
                            f"{status}); run it on its own to see why")
    if adapt:
        demo_adapt_split(weights, adapt_data)
    if not Path(frames_dir, TRUTH_FILE).is_file():
        print(f"demo: writing {DEMO_FRAMES} synthetic frames to {frames_dir} "
              f"(pure CEX, then PG from frame {DEMO_SPIKE} on)")
        generate_frames(frames_dir, DEMO_FRAMES, DEMO_SPIKE)


def demo_adapt_split(weights: str, adapt_data: str):
    """--demo adapts, against the model's training split: a demo model's is drawn again where it
    is gone (gacrystal/dataset/demo.py, the same seed), any other's checked; before the frames."""
    from gacrystal.classifier import config_beside, training_data_of
    from gacrystal.monitoring.adaptation import crops_folder, training_folders
    data = adapt_data or training_data_of(weights)
    if data and not adapt_data and config_beside(weights).get("demo") \
            and crops_folder(data, "train") is None:
        from gacrystal.dataset.demo import make_demo_split
        print(f"demo: --adapt fits against the demo model's training split, which is not in "
              f"{data}; drawing it again")
        make_demo_split(data)
    training_folders(data)


def export_for_training(s: dict):
    """--export_crops DIR: OUT's counted regions as training crops, corrected where marked
    (gacrystal.monitoring.corrections); monitors nothing."""
    from gacrystal.monitoring.corrections import export_report, export_run
    counts, marked = export_run(Path(s["out"]), Path(s["export_crops"]),
                                Path(s["corrections"]) if s["corrections"] else None)
    print(export_report(counts, marked, s["export_crops"], s["corrections"], s["weights"]))
    return 0


def add_opcua_user(users_file: str, name: str) -> int:
    from gacrystal.monitoring.opcua_users import add_user
    if not users_file:
        raise UserError("add_opcua_user needs the users file: pass --opcua_users FILE too")
    print(add_user(users_file, name))
    print(f"next: python GAmonitor.py --opcua URL --opcua_users {users_file} ...")
    return 0


def main(argv=None):
    s, given = parse_settings(__file__, "Watch a crystallization for PG in whole probe frames.",
                              argv)
    if s["demo"]:
        s, _ = layer_recipes(s, given, [("demo", DEMO)])
    if s["export_crops"]:
        return export_for_training(s)
    if s["add_opcua_user"]:
        return add_opcua_user(s["opcua_users"], s["add_opcua_user"])
    if s["corrections"]:
        raise UserError("corrections is read by --export_crops; pass --export_crops DIR too")
    check_settings(s, given)
    if s["demo"]:
        make_demo_inputs(s["weights"], s["frames"], s["adapt"], s["adapt_data"])
    from gacrystal.classifier import model_file
    from gacrystal.files import exclusive_lock
    from gacrystal.monitoring.state import run_identity
    with exclusive_lock(s["out"], "another monitoring run"):
        model = model_file(s["weights"])  # published weights by name: downloaded once
        runs = [(RunOptions.from_settings(run_s), run_identity(
                    Path(run_s["out"]), Path(run_s["frames"]), model, run_s["time_source"],
                    run_s["times"], run_s["overwrite"])) for run_s in experiment_settings(s)]
        if s["cluster"]:
            monitors = monitor_on_dask(s["cluster"], runs, model, s["frames_per_batch"],
                                       s["shard_batches"], engine=s["engine"])
        else:
            monitors = monitor_here(runs, model, engine=s["engine"])
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
