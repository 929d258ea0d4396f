"""Monitoring on synthetic spiking runs and on frames made of real crops (run by hand): detection
against truth.csv, the alarm and what it promises, sizes, OPC UA, frames per second
(GAmonitor.py's pipeline with its defaults).

    python bench/monitor.py                    # the demo model in weights/ (GAmain.py --demo)
    python bench/monitor.py --real ../shared/reference/real    # + frames made of real crops
    python bench/monitor.py --real ../shared/reference/real --adapt   # as GAmonitor.py --adapt
    python bench/monitor.py --real ../shared/reference/real --only_real --particle_split
    python bench/monitor.py --resnet101        # + ResNet-101 at 224 px, fp32 and int8 ONNX
    python bench/monitor.py --before 1caadaf   # monitoring speed then and now, and stop
    python bench/monitor.py --picture monitor-demo   # the README's picture from a GAmonitor run
    python bench/monitor.py --cluster_workers 1,2   # GAmonitor.py in one process, on local:1, local:2

Runs (written once into bench/_monitor/; see RUNS, MOSAIC_RUNS): spiking runs of 60 frames (PG
from frame 31, 21 or 26 on) and pure-CEX runs of 100 frames, all 1280 x 960; with --real, mosaics
of the real crops (1 PG at the spike, one more every 3 frames) and a pure-CEX mosaic; the outputs
stay in bench/_monitor/out-RUN/. Reports:
- candidate recall: truth PG agglomerates whose centre any candidate's box covers (the tiles
  cover nearly everything, so this says little); blob recall: whose centre a blob's box covers;
  PG recall: whose centre a counted region labelled PG covers; PG precision: counted PG regions
  that cover a truth agglomerate's centre;
- per-frame PG count error against truth (mean absolute), the PG fraction's error against
  truth PG / (counted CEX + PG);
- the alarm (the default: a threshold for a false alarm every 24 h at the frames' 10 s): frames
  from the spike to the alarm; false alarms on the pure-CEX runs; what it stated when it had
  learnt its baseline (ARL0, delays); and stated against observed ARL0 for short targets on the
  pure-CEX runs (the CUSUM replayed over their counts, restarted after each alarm);
- the D50 of the PG blobs found against the truth's (and of UNKNOWN blobs against the bubbles'
  and out-of-focus blobs'), synthetic runs only;
- the time one frame's OPC UA update takes (--opcua; on by default);
- frames per second, the share of time reading, finding, classifying and writing, peak memory
  after 20 and after all frames (flat memory: the two agree).
ResNet-101 has random weights here (ImageNet weights cannot be downloaded on these machines):
its speed is that of the trained model; its labels mean nothing, so only speed is reported.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, machine, peak_rss_mb

WORK = ROOT / "bench" / "_monitor"
# name: (frames, spike frame, seed). The blob-finding constants were chosen on "spiking" alone,
# the alarm's allowance on the first four; the "_c" runs were held out of both choices.
RUNS = {"spiking": (60, 31, 42), "spiking_b": (60, 21, 45), "pure_cex_a": (100, 0, 43),
        "pure_cex_b": (100, 0, 44), "spiking_c": (60, 26, 47), "pure_cex_c": (100, 0, 46)}
# Frames made of real crops (GAsynth.py --from_crops, gacrystal.synthetic.mosaic), with --real DIR:
# 1 PG particle at the spike, one more every 3 frames; and a pure-CEX mosaic run for false alarms.
# name: (frames, spike frame, seed)
MOSAIC_RUNS = {"mosaic_a": (40, 11, 52), "mosaic_b": (35, 16, 53), "mosaic_c": (34, 13, 54),
               "mosaic_pure_cex": (60, 0, 55)}
MOSAIC_SCHEDULE = {"pg_first": 1, "pg_per_step": 1, "step_every": 3}


def frames_of(name: str, crops: Path | None = None, particle_split: bool = False) -> Path:
    """The run's frames, written once (mosaics of the crops in `crops` for MOSAIC_RUNS; with
    particle_split, the baseline frames hold the first half of the CEX crops only, and the frames
    from the spike on all of them: new crystals come into view)."""
    from gacrystal.synthetic.frames import TRUTH_FILE, generate_frames
    folder = WORK / (name + ("-particle-split" if particle_split else ""))
    if not (folder / TRUTH_FILE).is_file():
        if name in MOSAIC_RUNS:
            from gacrystal.synthetic.mosaic import MosaicDrawer
            count, spike, seed = MOSAIC_RUNS[name]
            draw = MosaicDrawer.from_folder(crops)
            if particle_split:
                early = max(1, len(draw.cex) // 2)
                draw = MosaicDrawer(draw.cex[:early], draw.pg, draw.cex[early:])
            extra = dict(MOSAIC_SCHEDULE, draw=draw)
        else:
            (count, spike, seed), extra = RUNS[name], {}
        print(f"writing {count} frames to {folder} ...", flush=True)
        generate_frames(folder, count, spike, seed=seed, progress=False, **extra)
    return folder


def monitor(classifier, folder: Path, out: Path, limit: int | None = None,
            opcua: str = "", adapt_data: str = "") -> tuple[object, dict]:
    """GAmonitor.py's pipeline with its default alarm (a threshold for a false alarm every 24 h
    at the frames' interval); with opcua, each frame is also published on an OPC UA server and
    the time that takes is kept (memory["publish_ms"]); with adapt_data, GAmonitor.py --adapt
    (the decision fitted on the first 10 good frames and the training crops in adapt_data)."""
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor, in_groups, new_frames
    from gacrystal.monitoring.adaptation import BaselineAdapter, fitting_folders, training_crops
    folders = adapt_data and fitting_folders(classifier, adapt_data)
    adapter = adapt_data and BaselineAdapter(
        lambda: training_crops(classifier, *folders, 32), 10, 0.5, out) or None
    run = Monitor(classifier, out, FrameClock("exif"),
                  CusumRule(threshold=None, false_alarm_every_s=24 * 3600), overlay_every=0,
                  adapter=adapter)
    memory, server = {"publish_ms": []}, None
    if opcua:
        from gacrystal.monitoring.opcua import OpcUaServer
        server = OpcUaServer(opcua, run=out.name)
        server.start()

        def publish(frame):
            started = time.perf_counter()
            server.publish(frame, run)
            memory["publish_ms"].append(1000 * (time.perf_counter() - started))
        run.on_frame = publish
    paths = new_frames(folder, run)[:limit]
    started = time.perf_counter()
    for group in in_groups(paths, 4):
        run.process(group)
        if len(run.frames) == 20:
            memory["after_20_mb"] = peak_rss_mb()
    memory["seconds"] = time.perf_counter() - started
    memory["after_all_mb"] = peak_rss_mb()
    if server is not None:
        server.stop()
    return run, memory


def d50(values) -> float | None:
    return float(np.median(values)) if len(values) else None


def sizes_against_truth(out: Path, folder: Path) -> dict:
    """D50 of the PG blobs found (those that cover a truth agglomerate's centre) against the
    truth's, and of the UNKNOWN blobs against the distractors' (bubbles, out-of-focus blobs):
    equivalent diameters, px. Synthetic frames only (the truth knows the particles' areas)."""
    truth = {"pg": [], "distractor": []}
    centres = {}
    for row in csv.DictReader(open(folder / "truth.csv", encoding="utf-8")):
        if row["kind"] and row.get("area_px"):
            kind = "pg" if row["kind"] == "pg" else "distractor"
            if row["kind"] in ("pg", "bubble", "out_of_focus"):
                truth[kind].append(np.sqrt(4 * float(row["area_px"]) / np.pi))
                box = tuple(int(row[k]) for k in ("x", "y", "w", "h"))
                centres.setdefault((row["frame"], kind), []).append(box)
    found = {"pg": [], "distractor": []}
    for row in csv.DictReader(open(out / "particles.csv", encoding="utf-8")):
        if row["found_by"] != "blob" or row["counted"] != "1" or not row["diameter_px"]:
            continue
        kind = {"PG": "pg", "UNKNOWN": "distractor"}.get(row["label"])
        if kind and any(centre_in(row, box) for box in centres.get((row["frame"], kind), [])):
            found[kind].append(float(row["diameter_px"]))
    return {kind: (d50(found[kind]), d50(truth[kind]), len(found[kind]), len(truth[kind]))
            for kind in truth}


def centre_in(row: dict, box) -> bool:
    x, y, w, h = (int(row[k]) for k in ("x", "y", "w", "h"))
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return x <= cx < x + w and y <= cy < y + h


def detection(out: Path, truth: dict) -> dict:
    rows = list(csv.DictReader(open(out / "particles.csv", encoding="utf-8")))
    frames = {r["frame"]: r for r in csv.DictReader(open(out / "frames.csv", encoding="utf-8"))}
    by_frame = {}
    for row in rows:
        by_frame.setdefault(row["frame"], []).append(row)
    any_hits = blob_hits = pg_hits = total = pg_regions = pg_true = 0
    count_errors, fraction_errors = [], []
    for name, t in truth.items():
        if not frames[name]["pg"]:  # judged not good: nothing counted (its quality says why)
            continue
        found = by_frame.get(name, [])
        blobs = [r for r in found if r["found_by"] == "blob"]
        pg = [r for r in found if r["counted"] == "1" and r["label"] == "PG"]
        for box in t["pg"]:
            total += 1
            any_hits += any(centre_in(r, box) for r in found)
            blob_hits += any(centre_in(r, box) for r in blobs)
            pg_hits += any(centre_in(r, box) for r in pg)
        pg_regions += len(pg)
        pg_true += sum(any(centre_in(r, box) for box in t["pg"]) for r in pg)
        f = frames[name]
        count_errors.append(abs(int(f["pg"]) - len(t["pg"])))
        classified = int(f["cex"]) + int(f["pg"])
        if classified:
            fraction_errors.append(abs(int(f["pg"]) - len(t["pg"])) / classified)
    return {"candidate_recall": any_hits / max(total, 1), "blob_recall": blob_hits / max(total, 1), "pg_recall": pg_hits / max(total, 1),
            "pg_precision": pg_true / max(pg_regions, 1), "truth_pg": total,
            "count_mae": float(np.mean(count_errors)),
            "fraction_mae": float(np.mean(fraction_errors)) if fraction_errors else None}


def quality(classifier, label: str, runs: dict, crops: Path | None = None, opcua: str = "",
            adapt_data: str = "", particle_split: bool = False):
    """Every run monitored with GAmonitor.py's defaults: detection against truth, the alarm and
    what it promised, sizes against truth, speed, memory; returns the runs' frames."""
    from gacrystal.synthetic.frames import read_truth
    print(f"\n== {label}")
    done = {}
    for name, (_, spike, _) in runs.items():
        folder = frames_of(name, crops, particle_split)
        truth = read_truth(folder / "truth.csv")
        out = WORK / f"out-{folder.name}"  # kept, to look at the overlays and tables afterwards
        shutil.rmtree(out, ignore_errors=True)
        run, memory = monitor(classifier, folder, out, opcua=opcua, adapt_data=adapt_data)
        done[name] = run
        d = detection(out, truth)
        n = len(run.frames)
        fired = run.alarm_state.fired_at
        if spike:
            alarm = ("none" if fired is None else
                     f"frame {fired + 1} ({fired + 1 - spike:+d} from the spike at {spike})")
        else:
            alarm = "FALSE ALARM at frame %d" % (fired + 1) if fired is not None else "none (right)"
        pre = [f.summary.pg for f in run.frames[:spike - 1 if spike else n] if f.good]
        print(f"{name}: {n} frames, {n / memory['seconds']:.2f} frames/s "
              f"({run.time_shares()}); peak RSS {memory.get('after_20_mb', 0):.0f} MB after 20 "
              f"frames, {memory['after_all_mb']:.0f} MB after {n}")
        print(f"  alarm: {alarm}; PG regions per frame before PG: mean {np.mean(pre):.2f}, "
              f"max {max(pre)}; frames not good: {sum(not f.good for f in run.frames)}")
        if run.alarm.figures:
            print(f"  {run.alarm.figures.describe()}")
        if d["truth_pg"]:
            print(f"  {d['truth_pg']} truth PG: candidate recall {d['candidate_recall']:.1%} (tiles "
                  f"included), blob recall {d['blob_recall']:.1%}, PG recall "
                  f"{d['pg_recall']:.1%}, PG precision {d['pg_precision']:.1%}")
        print(f"  PG count per frame: mean absolute error {d['count_mae']:.2f}; PG fraction: "
              f"mean absolute error {d['fraction_mae']:.3f}")
        if crops is None:
            for kind, (found, real, n_found, n_real) in sizes_against_truth(out, folder).items():
                if found and real:
                    print(f"  D50 of {kind} blobs: {found:.1f} px found ({n_found}) vs {real:.1f} "
                          f"px true ({n_real}): {100 * (found - real) / real:+.1f}%")
        if memory["publish_ms"]:
            ms = np.array(memory["publish_ms"])
            print(f"  OPC UA: publishing a frame's {len(ms)} updates took {np.median(ms):.1f} ms "
                  f"(median; at most {ms.max():.1f} ms)")
    return done


def observed_false_alarms(runs: dict, targets=(25, 50, 100)):
    """The alarm's stated ARL0 against the false alarms it gives on pure-CEX runs: for each
    target, the threshold chosen from each run's own baseline, the CUSUM replayed over the run's
    later good frames, restarted after each alarm; frames per false alarm, pooled."""
    from gacrystal.monitoring import CusumRule
    from gacrystal.monitoring.arl import CountModel, run_length, threshold_for
    print("\n== stated vs observed ARL0 on the pure-CEX runs (thresholds for short targets, so "
          "that false alarms happen)")
    for target in targets:
        frames = alarms = 0
        stated = []
        for run in runs.values():
            counts = [f.summary.pg for f in run.frames if f.good]
            rule = CusumRule(baseline_frames=10)
            for c in counts[:10]:
                rule.baseline.append(c)
            rule.mean, rule.spread = float(np.mean(counts[:10])), max(float(np.std(counts[:10])), 1.0)
            model = CountModel.fit(counts[:10])
            h = threshold_for(rule.step_for, model, target)
            stated.append(run_length(rule.step_for(h), h, model))
            step, statistic = rule.step_for(h), 0.0
            for c in counts[10:]:
                frames += 1
                statistic = float(step(statistic, c))
                if statistic > h:
                    alarms += 1
                    statistic = 0.0
        observed = frames / alarms if alarms else float("inf")
        print(f"  target {target} frames: stated ARL0 {np.round(stated, 1).tolist()} (per run); "
              f"observed {alarms} false alarms in {frames} frames: one every {observed:.1f}")


def resnet101_speed(frames: int):
    """Frames per second of ResNet-101 at 224 px, fp32 and int8 ONNX (random weights)."""
    from gacrystal.classifier import load_classifier
    from gacrystal.model import build_classifier, model_card, scoring_model
    from gacrystal.onnx_io import export_onnx
    from gacrystal.quantize import quantize
    from gacrystal.synthetic.crops import generate_dataset
    work = Path(tempfile.mkdtemp())
    try:
        model = build_classifier("ResNet101", None, 224)
        model(np.zeros((1, 224, 224, 3), np.float32))  # the export needs a called model
        scorer, sizes = scoring_model(model)
        scorer(np.zeros((1, 224, 224, 3), np.float32))
        card = dict(model_card("ResNet101", 224, "bilinear"), feature_sizes=sizes)
        export_onnx(scorer, work / "model.onnx", card)
        crops = generate_dataset(work / "calibration", 16, 16, progress=False)
        quantize(work / "model.onnx", crops["CEX"] + crops["PG"], work / "model.int8.onnx", 224,
                 "bilinear")
        folder = frames_of("spiking")
        for name in ("model.onnx", "model.int8.onnx"):
            classifier = load_classifier(work / name)
            monitor(classifier, folder, work / "warm", limit=4)  # first-call costs
            run, memory = monitor(classifier, folder, work / f"out-{name}", limit=frames)
            print(f"ResNet-101 224 px {name}: {frames / memory['seconds']:.2f} frames/s "
                  f"({memory['seconds'] / frames:.2f} s per frame; {run.time_shares()}); "
                  f"peak RSS {memory['after_all_mb']:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


SPEED_CHILD = """
import json, shutil, sys, tempfile, time
from pathlib import Path
from gacrystal.classifier import load_classifier
folder, weights = Path(sys.argv[1]), sys.argv[2]
out = Path(tempfile.mkdtemp())
classifier = load_classifier(weights)
try:
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor, in_groups, new_frames
    alarm = CusumRule(threshold=None, false_alarm_every_s=86400)
except ImportError:  # the code before gacrystal/monitoring/ (issue 24)
    from gacrystal.monitor import FrameClock, Monitor, OnsetAlarm as CusumRule, in_groups, new_frames
    alarm = CusumRule()
run = Monitor(classifier, out, FrameClock("exif"), alarm, overlay_every=0)
paths = new_frames(folder, run)
started = time.perf_counter()
for group in in_groups(paths, 4):
    run.process(group)
print(json.dumps({"frames_per_s": len(paths) / (time.perf_counter() - started)}))
shutil.rmtree(out)
"""


def speed_before_after(commit: str, weights: str, rounds: int = 2):
    """Frames per second of the monitor at `commit` and now, on the spiking run, alternating
    (each in a fresh process: the same start-up costs, the machine's drift shared)."""
    import json
    import subprocess
    import sys
    folder = frames_of("spiking")
    archive = subprocess.run(["git", "archive", commit, "gacrystal"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    before = Path(tempfile.mkdtemp())
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    speeds = {"before": [], "now": []}
    for _ in range(rounds):
        for label, code in (("before", before), ("now", ROOT)):
            result = subprocess.run([sys.executable, "-c", SPEED_CHILD, str(folder), weights],
                                    cwd=code, capture_output=True, text=True, check=True)
            speeds[label].append(json.loads(result.stdout.strip().splitlines()[-1])["frames_per_s"])
    b, n = np.median(speeds["before"]), np.median(speeds["now"])
    print(f"monitoring speed on {folder.name} ({len(list(folder.glob('*.png')))} frames): at {commit} "
          f"{b:.2f} frames/s {np.round(speeds['before'], 2).tolist()}, now {n:.2f} "
          f"{np.round(speeds['now'], 2).tolist()}: {100 * (n - b) / b:+.1f}%")


def cluster_speed(weights: str, workers: list[int]):
    """GAmonitor.py on the spiking run in one process, then with --cluster local:N, end to end
    (with N: the cluster's start and each worker loading the model), and whether each cluster
    run's tables are one process's bytes."""
    import GAmonitor
    folder, work = frames_of("spiking"), Path(tempfile.mkdtemp())
    count, tables = len(list(folder.glob("*.png"))), {}
    try:
        for cluster in ["", *(f"local:{n}" for n in workers)]:
            out = work / (cluster.replace(":", "") or "one")
            started = time.perf_counter()
            GAmonitor.main(["--frames", str(folder), "--weights", weights, "--out", str(out),
                            *(["--cluster", cluster] if cluster else [])])
            seconds = time.perf_counter() - started
            tables[cluster] = [(out / name).read_bytes()
                               for name in ("frames.csv", "particles.csv", "sizes.csv")]
            same = "the same bytes" if tables[cluster] == tables[""] else "NOT the same bytes"
            print(f"GAmonitor.py {cluster or 'in one process'}: {count} frames in {seconds:.1f} s "
                  f"({count / seconds:.2f} frames/s); tables: {same} as one process's", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def readme_picture(run_dir: Path, dest: Path):
    """docs/monitoring.jpg: the overlay of the frame where the alarm fired beside the trend."""
    from PIL import Image
    frames = list(csv.DictReader(open(run_dir / "frames.csv", encoding="utf-8")))
    fired = next((f["frame"] for f in frames if f["event"] == "alarm"), frames[-1]["frame"])
    overlay = Image.open(run_dir / "overlays" / f"{Path(fired).stem}.png").convert("RGB")
    trend = Image.open(run_dir / "trend.png").convert("RGB")
    height = 600
    overlay = overlay.resize((round(overlay.width * height / overlay.height), height))
    trend = trend.resize((round(trend.width * height / trend.height), height))
    sheet = Image.new("RGB", (overlay.width + trend.width, height), "white")
    sheet.paste(overlay, (0, 0))
    sheet.paste(trend, (overlay.width, 0))
    sheet.save(dest, quality=85)
    print(f"wrote {dest} from {run_dir} (overlay of {fired})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "model.keras"))
    parser.add_argument("--resnet101", action="store_true")
    parser.add_argument("--resnet101_frames", type=int, default=12)
    parser.add_argument("--real", help="a folder of real crops (cex/ and pg/, or Kaggle names): "
                        "also measure on frames made of them (MOSAIC_RUNS), e.g. "
                        "../shared/reference/real")
    parser.add_argument("--only_real", action="store_true", help="with --real: skip the synthetic runs")
    parser.add_argument("--particle_split", action="store_true", help="with --real: the baseline "
                        "frames from half the CEX crops, the frames from the spike on from all "
                        "(new crystals come into view; bench/review.py splits PG by particle too)")
    parser.add_argument("--adapt", nargs="?", const="images/split-synthetic", default="",
                        help="as GAmonitor.py --adapt, fitted against this split's crops "
                        "(default: the demo's, images/split-synthetic)")
    parser.add_argument("--opcua", default="opc.tcp://127.0.0.1:48480/bench/",
                        help="publish every frame on an OPC UA server at this URL and time it "
                        "(empty: off)")
    parser.add_argument("--before", help="a commit: monitoring speed of its code against this "
                        "code's, on the spiking run, each in fresh processes, and stop")
    parser.add_argument("--cluster_workers", help="e.g. 1,2: GAmonitor.py on the spiking run in "
                        "one process and on local Dask clusters of that many workers, and stop")
    parser.add_argument("--picture", help="write docs/monitoring.jpg from this GAmonitor.py output "
                        "folder (e.g. monitor-demo) and stop")
    args = parser.parse_args()
    if args.picture:
        readme_picture(Path(args.picture), ROOT / "docs" / "monitoring.jpg")
        return
    print(f"machine: {machine()}")
    if args.cluster_workers:
        cluster_speed(args.weights, [int(n) for n in args.cluster_workers.split(",")])
        return
    from gacrystal.classifier import load_classifier
    classifier = load_classifier(args.weights)
    if args.before:
        speed_before_after(args.before, args.weights)
        return
    if not args.only_real:
        done = quality(classifier, f"{args.weights} (demo model), synthetic frames", RUNS,
                       opcua=args.opcua, adapt_data=args.adapt)
        observed_false_alarms({k: v for k, v in done.items() if RUNS[k][1] == 0})
    if args.real:
        quality(classifier, f"{args.weights} (demo model), frames made of the crops in {args.real}"
                + (", particle split" if args.particle_split else ""), MOSAIC_RUNS,
                Path(args.real), adapt_data=args.adapt, particle_split=args.particle_split)
    if args.resnet101:
        resnet101_speed(args.resnet101_frames)


if __name__ == "__main__":
    main()
