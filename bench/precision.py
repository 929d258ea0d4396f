"""Training step time by precision and BatchNorm folding, interleaved in one process (run by hand).

    python bench/precision.py                          # ResNet-101, 224 px, batch 64, 8 rounds
    python bench/precision.py --rounds 12 --variants float32,mixed_bfloat16+fold
    python bench/precision.py --profile mixed_bfloat16     # where two steps' time goes, by op

This shared machine's speed drifts by up to 30% within minutes, more than the differences
measured here; separate processes timed one after another compare the drift as much as the
variants. So every variant is built in this one process (a precision policy applies to the
layers built under it) and the rounds take one training step of each in turn, then one forward
pass over a batch (the validation's work): each variant's median over the rounds, and its ratio
to the first variant's median, are compared within a round's few seconds.

--profile VARIANT: two training steps of that variant under TensorFlow's profiler, and the
time its operations took by type (summed over TensorFlow's threads; the backward pass's marked
grad/): the convolutions against the casts, BatchNorm's multiplies and adds, the ReLUs.
"""
from __future__ import annotations

import argparse
import collections
import glob
import tempfile
import time

from common import machine, median

VARIANTS = "float32,float32+fold,mixed_bfloat16,mixed_bfloat16+fold"


def build_variants(names: list[str], backbone: str, image_size: int) -> dict:
    import keras
    from gacrystal.training.fit import build_and_compile
    trainers = {}
    for name in names:
        precision, _, fold = name.partition("+")
        keras.mixed_precision.set_global_policy(precision)
        keras.utils.set_random_seed(0)
        _, trainers[name] = build_and_compile(backbone, None, image_size, 0.1, (0.4, 0.3), 0.99,
                                              lr=0.01, momentum=0.9, fold_batchnorm=fold == "fold")
    keras.mixed_precision.set_global_policy("float32")
    return trainers


def time_rounds(trainers: dict, batch_size: int, image_size: int, rounds: int) -> dict:
    """{variant: {"step": [seconds], "forward": [seconds]}} over the rounds, after one warm-up."""
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size, image_size, image_size, 3)).astype(np.float32)
    y = (np.arange(batch_size) % 2).astype(np.float32)
    times = {name: {"step": [], "forward": []} for name in trainers}
    for round_ in range(rounds + 1):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer.train_on_batch(x, y)
            step = time.perf_counter() - started
            started = time.perf_counter()
            trainer.predict_on_batch(x)
            forward = time.perf_counter() - started
            if round_:  # round 0 traces the functions
                times[name]["step"].append(step)
                times[name]["forward"].append(forward)
        print(f"  round {round_}: " + ", ".join(f"{name} {t['step'][-1]:.2f}+{t['forward'][-1]:.2f} s"
                                               for name, t in times.items() if t["step"]), flush=True)
    return times


def profile(trainer, batch_size: int, image_size: int, rows: int = 14):
    """Two steps of `trainer` under tf.profiler; prints seconds by op type (its XPlane read
    with the protobuf TensorFlow ships)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    x = np.random.default_rng(0).integers(0, 256, (2 * batch_size, image_size, image_size, 3))
    x, y = x.astype(np.float32), (np.arange(2 * batch_size) % 2).astype(np.float32)
    trainer.fit(x, y, batch_size=batch_size, verbose=0)  # traced here
    logdir = tempfile.mkdtemp(prefix="ga-profile-")
    tf.profiler.experimental.start(logdir)
    trainer.fit(x, y, batch_size=batch_size, verbose=0)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    seconds, calls = collections.Counter(), collections.Counter()
    for plane in (p for p in space.planes if p.name == "/host:CPU"):
        for line in (l for l in plane.lines if l.name.startswith("tf_Compute")):
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "scope/op:OpType"
                if ":" not in name or name.startswith("ExecutorState"):  # spans holding the ops
                    continue
                kind = ("grad/" if "gradient_tape" in name else "") + name.rsplit(":", 1)[1]
                seconds[kind] += event.duration_ps / 1e12
                calls[kind] += 1
    total = sum(seconds.values())
    print(f"  {total:.2f} s in TensorFlow's operations over two steps:")
    for kind, value in seconds.most_common(rows):
        print(f"    {value:7.3f} s {100 * value / total:5.1f}%  {calls[kind]:5d} calls  {kind}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ResNet101")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--profile", default="", metavar="VARIANT",
                        help="instead: profile two steps of this variant, time by op type")
    parser.add_argument("--variants", default=VARIANTS,
                        help="PRECISION or PRECISION+fold, comma-separated; the first is the "
                        "reference of the ratios")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{args.backbone}, {args.image_size} px, batch {args.batch_size}, last 10% trainable")
    if args.profile:
        trainer = build_variants([args.profile], args.backbone, args.image_size)[args.profile]
        profile(trainer, args.batch_size, args.image_size)
        return
    print(f"median of {args.rounds} interleaved rounds after 1 warm-up")
    names = args.variants.split(",")
    times = time_rounds(build_variants(names, args.backbone, args.image_size), args.batch_size,
                        args.image_size, args.rounds)
    reference = {kind: median(times[names[0]][kind]) for kind in ("step", "forward")}
    print(f"  {'variant':<22} {'train step':>11} {'images/s':>9} {'ratio':>6}   "
          f"{'forward':>8} {'images/s':>9} {'ratio':>6}")
    for name in names:
        row = f"  {name:<22}"
        for kind in ("step", "forward"):
            seconds = median(times[name][kind])
            row += (f" {seconds:9.2f} s {args.batch_size / seconds:9.1f} "
                    f"{reference[kind] / seconds:5.2f}x  ")
        print(row)


if __name__ == "__main__":
    main()
