"""Where and how training computes: tf.distribute strategies, mixed precision, XLA.

- `distribute`: "none" (one device), "mirrored" (tf.distribute.MirroredStrategy: every local GPU,
  or the devices listed), "auto" (mirrored when more than one GPU is visible, else none),
  "multiworker" (several machines: tf.distribute.MultiWorkerMirroredStrategy from TF_CONFIG,
  trained by gacrystal.training.multiworker's loop, since Keras 3's fit() does not run under it).
  The batch size is the global batch: each of N replicas computes batch_size / N images per step and
  the gradients are summed across replicas by TensorFlow, so the learning rate needs no change
  with N.
- `precision`: Keras's mixed-precision policies. The output layer (P(PG)) and the loss stay
  float32; mixed_float16 gets Keras's loss scaling. The model is saved in float32 whatever the
  policy, so labelling and ONNX Runtime need nothing new. "auto" (`chosen_precision`) takes
  mixed_float16 with a GPU, mixed_bfloat16 on a CPU with bf16 arithmetic (AVX-512 BF16 or AMX:
  with the frozen trunk's BatchNorm folded, gacrystal.training.folding, a training step 1.8x the
  float32 step on an AVX-512 BF16 EPYC; bench/RESULTS.md), float32 elsewhere (AVX2 only, where
  bf16 is emulated).
- `jit_compile`: "auto" is Keras's rule (XLA with a GPU, not on a CPU); "on" / "off" force it.
"""
from __future__ import annotations

import contextlib
import os

DISTRIBUTE = ("auto", "none", "mirrored", "multiworker")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def make_strategy(distribute: str, devices: str = "", worker_timeout: float = 300):
    """The tf.distribute strategy, or None for one device. Call it before any other TensorFlow
    work. multiworker: once every worker of TF_CONFIG has come up (at most worker_timeout s)."""
    import tensorflow as tf
    if distribute == "multiworker":
        from gacrystal.training import multiworker
        return multiworker.make_strategy(worker_timeout)
    if distribute == "auto":
        distribute = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"
    if distribute == "none":
        return None
    listed = [d.strip() for d in devices.split(",") if d.strip()] or None
    return tf.distribute.MirroredStrategy(devices=listed)


def writes_run_folder(distribute: str) -> bool:
    """False only on a worker of several that is not the chief (TF_CONFIG says which is)."""
    if distribute != "multiworker":
        return True
    from gacrystal.training import multiworker
    return multiworker.is_chief(multiworker.read_tf_config(os.environ.get("TF_CONFIG")))


def scope(strategy):
    """The strategy's scope for building and compiling the model (nothing without one)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replicas(strategy) -> int:
    return strategy.num_replicas_in_sync if strategy is not None else 1


def synchronize_batchnorm(model):
    """Makes every BatchNormalization layer normalise with the statistics of the global batch,
    summed across replicas, instead of each replica's share of it: with batch 64 on 8 GPUs a
    replica sees 8 images, too few for steady statistics. Training then computes what one device
    would at the same global batch."""
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.Model):  # the nested backbone
            synchronize_batchnorm(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def chosen_precision(precision: str) -> tuple[str, str]:
    """The policy that `precision` means here, and why (see the module's docstring)."""
    if precision != "auto":
        return precision, "as set"
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16", "auto: a GPU is visible"
    bf16 = sorted(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    if bf16:
        return "mixed_bfloat16", f"auto: this CPU computes in bf16 ({', '.join(bf16)})"
    return "float32", "auto: no GPU and no bf16 arithmetic (AVX-512 BF16 or AMX) on this CPU"


def set_precision(precision: str):
    import keras
    keras.mixed_precision.set_global_policy(precision)


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras's global policy set to `precision` while the block runs, and put back after it
    however it ends (a run stopped by an error must not leave later models in bf16)."""
    import keras
    before = keras.mixed_precision.global_policy()
    set_precision(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def float32_copy(model, build, strategy=None):
    """The trained weights in a float32 model made by `build()` (the same architecture), for
    saving and labelling; the model itself when it already computes in float32, unless it was
    trained on several workers (its predict() and save() would wait for the others)."""
    import keras
    from gacrystal.training import multiworker
    if keras.mixed_precision.global_policy().name == "float32" and not multiworker.in_use(strategy):
        return model
    keras.mixed_precision.set_global_policy("float32")
    copy = build()
    copy.set_weights(model.get_weights())
    return copy
