"""Training speed against the compute ceiling, and peak memory (run by hand, not by the tests).

    python bench/train.py                       # 320 train + 128 val images, 224 px, ResNet-101
    python bench/train.py --train 640 --val 256 --repeats 3 --image_size 224
    python bench/train.py --workers 2          # (c) only: multi-worker scaling
    python bench/train.py --kernels            # (d) only: oneDNN's kernels, float32 and bf16
    python bench/train.py --original --variants float32,bf16-unfolded,float32-unfolded

(a) ceiling: fit() on in-memory tensors of the same shapes, plus one predict() over the
    validation tensors: the same model, batch size and precision (auto: GAmain.py's choice for
    this machine; the BatchNorm folded, gacrystal.training.folding), no input pipeline, no
    callbacks.
(b) real: GAmain.main() itself on a synthetic split: decoding, caching, augmentation, the
    validation callback, CSV log, the per-epoch backup; its per-epoch time is history.csv's
    epoch_seconds plus the backup's time.
(c) --workers N: GAmain.py --distribute multiworker as N worker processes on loopback ports, one
    core each, against one worker on one core, at the same global batch: images/s (train + val
    images per epoch, from the chief's history.csv) and the efficiency (N workers' images/s over
    N times one worker's); the N-worker run twice, for the run-to-run agreement of the final
    weights (and their distance from one worker's).
(d) --kernels: which oneDNN kernels the ceiling's float32 and mixed_bfloat16 steps run on this
    CPU (ONEDNN_VERBOSE=1 in the child): each primitive's implementation and its share of the
    time the primitives took, one warm-up epoch and one timed.
(e) --original: the original's epoch in Keras 2 (bench/original.py: ImageDataGenerator from the
    files, validation three times) on the same split, in the same run as (a) and (b).
Each runs in its own process; the first epoch (warm-up: tracing, caches) is excluded and the
median of the rest is reported, with each process's peak resident memory.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (ROOT, machine, median, peak_rss_mb, run_child, run_script,
                    synthetic_split)


def ceiling(args) -> dict:
    import numpy as np
    import keras
    from gacrystal.training.distribution import JIT_COMPILE, chosen_precision, set_precision
    from gacrystal.training.fit import build_and_compile
    s = bench_settings(args)
    keras.utils.set_random_seed(0)
    set_precision(chosen_precision(args.precision)[0])  # auto: as GAmain.py's real epoch
    _, model = build_and_compile(s["backbone"], s["weights"], s["image_size"],
                                 s["trainable_fraction"], (s["dropout1"], s["dropout2"]),
                                 s["bn_momentum"], s["lr"], s["momentum"],
                                 jit_compile=JIT_COMPILE[args.jit_compile],
                                 fold_batchnorm=args.fold_batchnorm == "on")
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
    from gacrystal.training.callbacks import BackupEachEpoch
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


def original_epochs(args) -> dict:
    """(e): bench/original.py on this run's split, in a process of its own."""
    return run_script(Path(__file__).with_name("original.py"), [
        "--data", str(Path(args.work, "split")), "--epochs", str(args.repeats + 1),
        "--image_size", str(args.image_size), "--batch_size", str(args.batch_size),
        "--backbone", args.backbone])


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
    parser.add_argument("--original", action="store_true",
                        help="also time the original's epoch (bench/original.py) in this run")
    parser.add_argument("--variants", default="",
                        help="also time the ceiling in these variants, each against the "
                        "ceiling of this run (precision auto, BatchNorm folded): "
                        f"{', '.join(VARIANTS)} (comma-separated)")
    parser.add_argument("--workers", type=int, default=0,
                        help="instead of (a) and (b): N workers of one core each against one")
    parser.add_argument("--kernels", action="store_true",
                        help="instead of (a) and (b): the oneDNN kernels of float32 and bf16")
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--jit_compile", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--fold_batchnorm", default="on", help=argparse.SUPPRESS)
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
    if args.workers:
        scaling(args)
        return
    if args.kernels:
        for precision in ("float32", "mixed_bfloat16"):
            print_kernels(precision, onednn_kernels(passed, precision))
        return
    results = {mode: run_child(Path(__file__), [mode, *passed]) for mode in ("ceiling", "real")}
    if args.original:
        results["original"] = original_epochs(args)
    for mode, r in results.items():
        r["median"] = median(r["epoch_seconds"][1:])
        print(f"  {mode:<8} {r['median']:7.1f} s/epoch   peak RSS {r['peak_rss_mb'] / 1024:5.2f} GB"
              f"   epochs: {', '.join(f'{t:.1f}' for t in r['epoch_seconds'])}")
    backups = results["real"]["backup_seconds"][1:]
    print(f"  (real includes the per-epoch backup: median {median(backups):.1f} s)")
    ratio = results["ceiling"]["median"] / results["real"]["median"]
    print(f"  real epoch runs at {100 * ratio:.0f}% of the compute ceiling")
    if args.original:
        print(f"  real epoch: {results['original']['median'] / results['real']['median']:.2f}x "
              "the original's speed")
    if args.variants:
        time_variants(args, passed, results["ceiling"]["median"])


def scaling(args):
    """(c): one worker, then args.workers workers twice; each worker pinned to a core of its own."""
    argv = ["--data", str(Path(args.work, "split")), "--runs", str(Path(args.work, "runs")),
            "--weights", "none", "--epochs", str(args.repeats + 1), "--f1_stop", "2",
            "--backbone", args.backbone, "--image_size", str(args.image_size),
            "--batch_size", str(args.batch_size), "--distribute", "multiworker", "--no-export_onnx"]
    images = args.train + args.val
    runs = {}
    for name, n in (("one", 1), ("several", args.workers), ("again", args.workers)):
        started = time.perf_counter()
        run_dir = train_on_workers(n, argv, f"{name}-{n}-workers", args.work)
        with open(run_dir / "history.csv", newline="") as f:
            seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
        runs[name] = {"dir": run_dir, "per_second": images / median(seconds[1:])}
        print(f"  {n} worker(s) x 1 core: {median(seconds[1:]):7.1f} s/epoch "
              f"{runs[name]['per_second']:7.1f} images/s   (epochs: "
              f"{', '.join(f'{t:.1f}' for t in seconds)}; whole run {time.perf_counter() - started:.0f} s)")
    speedup = runs["several"]["per_second"] / runs["one"]["per_second"]
    print(f"  {args.workers} workers: {speedup:.2f}x one worker's images/s, efficiency "
          f"{100 * speedup / args.workers:.0f}%")
    print(f"  final weights, largest |difference|: {args.workers} workers run twice "
          f"{weights_difference(runs['several']['dir'], runs['again']['dir']):.3g}; "
          f"{args.workers} workers vs one worker "
          f"{weights_difference(runs['several']['dir'], runs['one']['dir']):.3g}")


def train_on_workers(n: int, argv: list[str], run_name: str, work: str) -> Path:
    """GAmain.py ARGV --run_name RUN_NAME as n workers of one TF_CONFIG on loopback ports, worker
    i on core i only; their output goes to WORK/logs. Returns the run folder."""
    from gacrystal.training.multiworker import loopback_tf_configs
    logs = Path(work, "logs")
    logs.mkdir(exist_ok=True)
    configs = loopback_tf_configs(n)
    processes = []
    for i in range(n):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1",
                   TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                   TF_CONFIG=configs[i])
        log = logs / f"{run_name}.worker{i}.log"
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "GAmain.py"), *argv, "--run_name", run_name], cwd=ROOT,
            env=env,
            stdout=log.open("w"), stderr=subprocess.STDOUT,
            preexec_fn=lambda core=i % os.cpu_count(): os.sched_setaffinity(0, {core})))
    if any([p.wait() != 0 for p in processes]):  # every one waited for
        raise RuntimeError(f"a worker failed; its output is in {logs}")
    return Path(argv[argv.index("--runs") + 1], run_name)


def weights_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between two runs' final weights (their model.h5)."""
    import h5py
    import numpy as np
    with h5py.File(a / "model.h5") as fa, h5py.File(b / "model.h5") as fb:
        names = []
        fa["model_weights"].visit(lambda name: names.append(name)
                                  if isinstance(fa["model_weights"][name], h5py.Dataset) else None)
        assert names, "no weights in model.h5"
        return max(float(np.max(np.abs(fa["model_weights"][name][()] - fb["model_weights"][name][()]),
                                initial=0)) for name in names)


VARIANTS = {  # name -> (extra child arguments, extra environment)
    "float32": (["--precision", "float32"], {}),
    "bf16": (["--precision", "mixed_bfloat16"], {}),
    "xla": (["--jit_compile", "on"], {}),
    "onednn-off": ([], {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "onednn-on": ([], {"TF_ENABLE_ONEDNN_OPTS": "1"}),
    "float32-unfolded": (["--precision", "float32", "--fold_batchnorm", "off"], {}),
    "bf16-unfolded": (["--precision", "mixed_bfloat16", "--fold_batchnorm", "off"], {}),
}


def time_variants(args, passed: list[str], ceiling_seconds: float):
    """The ceiling again in each variant; images/s and the ratio to this run's ceiling."""
    from gacrystal.training.distribution import chosen_precision
    images = args.train + args.val
    print(f"  ceiling variants (images/s = {args.train} train + {args.val} val images per epoch):")
    print(f"    {'ceiling':<16} {ceiling_seconds:7.1f} s/epoch {images / ceiling_seconds:7.1f} "
          f"images/s   1.00x   ({chosen_precision(args.precision)[0]}, BatchNorm folded)")
    for name in args.variants.split(","):
        extra, env = VARIANTS[name]
        r = run_child(Path(__file__), ["ceiling", *passed, *extra], env=env)
        seconds = median(r["epoch_seconds"][1:])
        print(f"    {name:<16} {seconds:7.1f} s/epoch {images / seconds:7.1f} images/s "
              f"{ceiling_seconds / seconds:6.2f}x   (epochs: "
              f"{', '.join(f'{t:.1f}' for t in r['epoch_seconds'])})")


def onednn_kernels(passed: list[str], precision: str) -> dict[tuple[str, str], list[float]]:
    """{(primitive, implementation): [calls, milliseconds]} of the ceiling's timed epoch at this
    precision, from oneDNN's own log (ONEDNN_VERBOSE=1: one line per primitive executed)."""
    argv = [arg for arg in passed if arg != "--kernels"]
    argv = argv[:argv.index("--repeats")] + argv[argv.index("--repeats") + 2:] \
        if "--repeats" in argv else argv
    result = subprocess.run(
        [sys.executable, str(Path(__file__)), "--child", "ceiling", *argv, "--repeats", "1",
         "--precision", precision], cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", ONEDNN_VERBOSE="1"))
    if result.returncode != 0:
        raise RuntimeError(f"child failed:\n{result.stderr[-3000:]}")
    lines = [line.split(",") for line in result.stdout.splitlines()
             if line.startswith("onednn_verbose") and ",exec," in line]
    lines = lines[len(lines) // 2:]  # about the timed epoch: the warm-up ran the same steps
    tally: dict[tuple[str, str], list[float]] = {}
    for fields in lines:
        at = fields.index("exec")  # then: engine, primitive, implementation, ..., milliseconds
        entry = tally.setdefault((fields[at + 2], fields[at + 3]), [0, 0.0])
        entry[0] += 1
        entry[1] += float(fields[-1])
    return tally


def print_kernels(precision: str, tally: dict[tuple[str, str], list[float]], rows: int = 8):
    total = sum(ms for _, ms in tally.values()) or 1.0
    print(f"  oneDNN kernels, {precision}: {total / 1000:.1f} s in primitives")
    for (primitive, implementation), (calls, ms) in sorted(tally.items(),
                                                         key=lambda kv: -kv[1][1])[:rows]:
        print(f"    {100 * ms / total:5.1f}%  {primitive:<14} {implementation:<36} {calls:6d} calls")


if __name__ == "__main__":
    main()
