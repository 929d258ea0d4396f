"""Training speed against the compute ceiling, and peak memory (run by hand, not by the tests).

    python bench/train.py                       # 320 train + 128 val images, 224 px, ResNet-101
    python bench/train.py --train 640 --val 256 --repeats 3 --image_size 224

(a) ceiling: fit() on in-memory tensors of the same shapes, plus one predict() over the
    validation tensors: the same model and batch size, no input pipeline, no callbacks.
(b) real: GAmain.main() itself on a synthetic split: decoding, caching, augmentation, the
    validation callback, CSV log, the per-epoch backup; its per-epoch time is history.csv's
    epoch_seconds plus the backup's time.
Each runs in its own process; the first epoch (warm-up: tracing, caches) is excluded and the
median of the rest is reported, with each process's peak resident memory.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from common import machine, median, peak_rss_mb, run_child, synthetic_split


def ceiling(args) -> dict:
    import numpy as np
    import keras
    from gacrystal.training import build_and_compile
    from gacrystal.distribution import JIT_COMPILE, set_precision
    s = bench_settings(args)
    keras.utils.set_random_seed(0)
    set_precision(args.precision)
    model = build_and_compile(s["backbone"], s["weights"], s["image_size"],
                              s["trainable_fraction"], (s["dropout1"], s["dropout2"]),
                              s["bn_momentum"], s["lr"], s["momentum"],
                              jit_compile=JIT_COMPILE[args.jit_compile])
    rng = np.random.default_rng(0)
    shape = (args.image_size, args.image_size, 3)
    x = rng.integers(0, 256, (args.train, *shape)).astype(np.float32)
    y = (np.arange(args.train) % 2).astype(np.float32)
    x_val = rng.integers(0, 256, (args.val, *shape)).astype(np.float32)
    seconds = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
        model.predict(x_val, batch_size=args.batch_size, verbose=0)
        seconds.append(time.perf_counter() - start)
    return {"epoch_seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def real(args) -> dict:
    import GAmain
    from gacrystal.callbacks import BackupEachEpoch
    runs = Path(args.work, "runs")
    # epoch_seconds ends at the validation pass; the backup of each epoch comes after it, so it
    # is timed here and added (it is part of a real epoch's cost).
    backup_seconds, save = [], BackupEachEpoch.on_epoch_end

    def timed_save(self, epoch, logs=None):
        start = time.perf_counter()
        save(self, epoch, logs)
        backup_seconds.append(time.perf_counter() - start)
    BackupEachEpoch.on_epoch_end = timed_save
    argv = ["--data", str(Path(args.work, "split")), "--runs", str(runs), "--weights", "none",
            "--epochs", str(args.repeats + 1), "--f1_stop", "2", "--backbone", args.backbone,
            "--image_size", str(args.image_size), "--batch_size", str(args.batch_size)]
    if not args.onnx:
        argv.append("--no-export_onnx")
    started = time.perf_counter()
    GAmain.main(argv)
    total = time.perf_counter() - started
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    with open(run_dir / "history.csv", newline="") as f:
        seconds = [float(row["epoch_seconds"]) + backup
                   for row, backup in zip(csv.DictReader(f), backup_seconds)]
    return {"epoch_seconds": seconds, "peak_rss_mb": peak_rss_mb(), "run_seconds": total,
            "backup_seconds": backup_seconds}


def bench_settings(args) -> dict:
    import GAmain
    from gacrystal.cli import read_settings_block
    s = {name: value for name, value, _ in read_settings_block(GAmain.__file__)}
    s.update(backbone=args.backbone, weights=None, image_size=args.image_size,
             batch_size=args.batch_size, demo=False)
    return s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=320, help="training images")
    parser.add_argument("--val", type=int, default=128, help="validation images")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--backbone", default="ResNet101")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs after the warm-up")
    parser.add_argument("--onnx", action="store_true", help="include the ONNX export in (b)")
    parser.add_argument("--work", default="", help="folder for data and runs (default: temporary)")
    parser.add_argument("--variants", default="",
                        help="also time the ceiling in these variants, each against float32 in "
                        "this run: bf16, xla, onednn-off, onednn-on (comma-separated)")
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit_compile", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["ceiling", "real"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps((ceiling if args.child == "ceiling" else real)(args)))
        return
    args.work = args.work or tempfile.mkdtemp(prefix="ga-bench-train-")
    synthetic_split(Path(args.work, "split"), args.train, args.val)
    passed = [a for a in sys.argv[1:] if a not in ("--child",)]
    if "--work" not in passed:
        passed += ["--work", args.work]
    print(f"machine: {machine()}")
    print(f"{args.backbone}, {args.image_size} px, batch {args.batch_size}, "
          f"{args.train} train + {args.val} val images, median of {args.repeats} epochs after 1 warm-up")
    results = {mode: run_child(Path(__file__), [mode, *passed]) for mode in ("ceiling", "real")}
    for mode, r in results.items():
        r["median"] = median(r["epoch_seconds"][1:])
        print(f"  {mode:<8} {r['median']:7.1f} s/epoch   peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB"
              f"   epochs: {', '.join(f'{t:.1f}' for t in r['epoch_seconds'])}")
    backups = results["real"]["backup_seconds"][1:]
    print(f"  (real includes the per-epoch backup: median {median(backups):.1f} s)")
    ratio = results["ceiling"]["median"] / results["real"]["median"]
    print(f"  real epoch runs at {100 * ratio:.0f}% of the compute ceiling")
    if args.variants:
        time_variants(args, passed, results["ceiling"]["median"])


VARIANTS = {  # name -> (extra child arguments, extra environment)
    "bf16": (["--precision", "mixed_bfloat16"], {}),
    "xla": (["--jit_compile", "on"], {}),
    "onednn-off": ([], {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "onednn-on": ([], {"TF_ENABLE_ONEDNN_OPTS": "1"}),
}


def time_variants(args, passed: list[str], float32_seconds: float):
    """The ceiling again in each variant; images/s and the ratio to float32's ceiling."""
    images = args.train + args.val
    print(f"  ceiling variants (images/s = {args.train} train + {args.val} val images per epoch):")
    print(f"    {'float32':<11} {float32_seconds:7.1f} s/epoch {images / float32_seconds:7.1f} "
          "images/s   1.00x")
    for name in args.variants.split(","):
        extra, env = VARIANTS[name]
        r = run_child(Path(__file__), ["ceiling", *passed, *extra], env=env)
        seconds = median(r["epoch_seconds"][1:])
        print(f"    {name:<11} {seconds:7.1f} s/epoch {images / seconds:7.1f} images/s "
              f"{float32_seconds / seconds:6.2f}x   (epochs: "
              f"{', '.join(f'{t:.1f}' for t in r['epoch_seconds'])})")


if __name__ == "__main__":
    main()
