"""Monitoring on synthetic spiking runs (run by hand): detection against truth.csv, the alarm, and
frames per second (GAmonitor.py's pipeline).

    python bench/monitor.py                    # the demo model in weights/ (GAmain.py --demo)
    python bench/monitor.py --resnet101        # + ResNet-101 at 224 px, fp32 and int8 ONNX
    python bench/monitor.py --picture monitor-demo   # the README's picture from a GAmonitor run

Runs (written once into bench/_monitor/; see RUNS): spiking runs of 60 frames (PG from frame 31,
21 or 26 on) and pure-CEX runs of 100 frames, all 1280 x 960; the outputs stay in
bench/_monitor/out-RUN/. Reports:
- candidate recall: truth PG agglomerates whose centre any candidate's box covers (the tiles
  cover nearly everything, so this says little); blob recall: whose centre a blob's box covers;
  PG recall: whose centre a counted region labelled PG covers; PG precision: counted PG regions
  that cover a truth agglomerate's centre;
- per-frame PG count error against truth (mean absolute), the PG fraction's error against
  truth PG / (counted CEX + PG);
- the alarm: frames from the spike to the alarm; false alarms on the pure-CEX runs;
- frames per second, the share of time finding candidates vs classifying, peak memory after
  20 and after all frames (flat memory: the two agree).
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
# Frames made of real crops (GAsynth.py --from_crops, gacrystal.mosaic), with --real DIR: 1 PG
# particle at the spike, one more every 3 frames; and a pure-CEX mosaic run for false alarms.
# name: (frames, spike frame, seed)
MOSAIC_RUNS = {"mosaic_a": (40, 11, 52), "mosaic_b": (35, 16, 53), "mosaic_c": (34, 13, 54),
               "mosaic_pure_cex": (60, 0, 55)}
MOSAIC_SCHEDULE = {"pg_first": 1, "pg_per_step": 1, "step_every": 3}


def frames_of(name: str, crops: Path | None = None) -> Path:
    """The run's frames, written once (mosaics of the crops in `crops` for MOSAIC_RUNS)."""
    from gacrystal.frames import TRUTH_FILE, generate_frames
    folder = WORK / name
    if not (folder / TRUTH_FILE).is_file():
        if name in MOSAIC_RUNS:
            from gacrystal.mosaic import MosaicDrawer
            count, spike, seed = MOSAIC_RUNS[name]
            extra = dict(MOSAIC_SCHEDULE, draw=MosaicDrawer.from_folder(crops))
        else:
            (count, spike, seed), extra = RUNS[name], {}
        print(f"writing {count} frames to {folder} ...", flush=True)
        generate_frames(folder, count, spike, seed=seed, progress=False, **extra)
    return folder


def monitor(classifier, folder: Path, out: Path, limit: int | None = None) -> tuple[object, dict]:
    from gacrystal.monitoring import CusumRule, FrameClock, Monitor, in_groups, new_frames
    run = Monitor(classifier, out, FrameClock("exif"), CusumRule(), overlay_every=0)
    memory = {}
    paths = new_frames(folder, run)[:limit]
    started = time.perf_counter()
    for group in in_groups(paths, 4):
        run.process(group)
        if len(run.frames) == 20:
            memory["after_20_mb"] = peak_rss_mb()
    memory["seconds"] = time.perf_counter() - started
    memory["after_all_mb"] = peak_rss_mb()
    return run, memory


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


def quality(classifier, label: str, runs: dict, crops: Path | None = None):
    from gacrystal.frames import read_truth
    print(f"\n== {label}")
    for name, (_, spike, _) in runs.items():
        folder = frames_of(name, crops)
        truth = read_truth(folder / "truth.csv")
        out = WORK / f"out-{name}"  # kept, to look at the overlays and tables afterwards
        shutil.rmtree(out, ignore_errors=True)
        run, memory = monitor(classifier, folder, out)
        d = detection(out, truth)
        n = len(run.frames)
        fired = run.alarm_state.fired_at
        if spike:
            alarm = ("none" if fired is None else
                     f"frame {fired + 1} ({fired + 1 - spike:+d} from the spike at {spike})")
        else:
            alarm = "FALSE ALARM at frame %d" % (fired + 1) if fired is not None else "none (right)"
        pre = [f.summary.pg for f in run.frames[:spike - 1 if spike else n]]
        print(f"{name}: {n} frames, {n / memory['seconds']:.2f} frames/s "
              f"({run.time_shares()}); peak RSS {memory.get('after_20_mb', 0):.0f} MB after 20 "
              f"frames, {memory['after_all_mb']:.0f} MB after {n}")
        print(f"  alarm: {alarm}; PG regions per frame before PG: mean {np.mean(pre):.2f}, "
              f"max {max(pre)}")
        if d["truth_pg"]:
            print(f"  {d['truth_pg']} truth PG: candidate recall {d['candidate_recall']:.1%} (tiles "
                  f"included), blob recall {d['blob_recall']:.1%}, PG recall "
                  f"{d['pg_recall']:.1%}, PG precision {d['pg_precision']:.1%}")
        print(f"  PG count per frame: mean absolute error {d['count_mae']:.2f}; PG fraction: "
              f"mean absolute error {d['fraction_mae']:.3f}")


def resnet101_speed(frames: int):
    """Frames per second of ResNet-101 at 224 px, fp32 and int8 ONNX (random weights)."""
    from gacrystal.classifier import load_classifier
    from gacrystal.model import build_classifier, model_card, scoring_model
    from gacrystal.onnx_io import export_onnx
    from gacrystal.quantize import quantize
    from gacrystal.synthetic import generate_dataset
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
    parser.add_argument("--picture", help="write docs/monitoring.jpg from this GAmonitor.py output "
                        "folder (e.g. monitor-demo) and stop")
    args = parser.parse_args()
    if args.picture:
        readme_picture(Path(args.picture), ROOT / "docs" / "monitoring.jpg")
        return
    print(f"machine: {machine()}")
    from gacrystal.classifier import load_classifier
    classifier = load_classifier(args.weights)
    if not args.only_real:
        quality(classifier, f"{args.weights} (demo model), synthetic frames", RUNS)
    if args.real:
        quality(classifier, f"{args.weights} (demo model), frames made of the crops in {args.real}",
                MOSAIC_RUNS, Path(args.real))
    if args.resnet101:
        resnet101_speed(args.resnet101_frames)


if __name__ == "__main__":
    main()
