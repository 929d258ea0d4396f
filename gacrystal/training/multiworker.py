"""Training on several machines: tf.distribute.MultiWorkerMirroredStrategy, configured by TF_CONFIG.

Keras 3's fit() does not run under this strategy (keras-team/keras#20585: it reduces the first
data batch across workers, then its scalar metrics along axis 0), but TensorFlow's engine does.
So `fit` here is a loop of TensorFlow's steps that drives the very callbacks fit() is given,
through the same hooks with the same logs: the per-epoch validation report, the F1 and val-loss
stop rules, the NaN guard, history.csv and the backup exist once, in
gacrystal/training/callbacks.py.

- Each step: every replica computes its piece of the global batch (gacrystal.training.data's
  `shard`), the loss is averaged over the global batch (`tf.nn.compute_average_loss`), the
  optimizer sums the gradients across replicas (an all-reduce), BatchNorm normalises with the
  global batch's statistics (synchronised).
- Every number a callback decides on is reduced across the workers, hence identical on each, so
  every worker stops at the same epoch: the training loss and accuracy are sums all-reduced each
  step; the validation images are predicted piece by piece and the pieces summed into one vector
  (`validation_predictor`), from which every worker computes the same report.
- TensorFlow waits for the workers of TF_CONFIG without a limit; `make_strategy` gives up after
  worker_timeout seconds with a one-line error naming the worker that did not come up. A worker
  that stops later stops the others within seconds (TensorFlow's heartbeats), with a one-line
  error too; the same command on every worker then continues from the last completed epoch.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

from gacrystal.errors import UserError

JOBS = ("chief", "worker")  # the TF_CONFIG jobs MultiWorkerMirroredStrategy trains with
EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
           '"task": {"type": "worker", "index": 0}}')


def read_tf_config(text: str | None) -> dict:
    """TF_CONFIG (TensorFlow's cluster description), checked: every error names what is wrong."""
    if not text:
        raise UserError("distribute=multiworker needs the TF_CONFIG environment variable on every "
                        f"worker, e.g. TF_CONFIG='{EXAMPLE}' (index 1 on the second machine)")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise UserError(f"TF_CONFIG is not JSON ({error}). Received: TF_CONFIG={text}") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict) or not cluster:
        raise UserError(f"TF_CONFIG needs a cluster and a task, as in {EXAMPLE}. Received: "
                        f"TF_CONFIG={text}")
    for job, addresses in cluster.items():
        if job not in JOBS:
            raise UserError(f"TF_CONFIG's cluster may hold only {' and '.join(JOBS)} jobs "
                            f"(MultiWorkerMirroredStrategy). Received: {job}")
        if not isinstance(addresses, list) or not all(
                isinstance(a, str) and re.fullmatch(r"[^\s:]+:\d+", a) for a in addresses):
            raise UserError(f"TF_CONFIG's {job} job must list host:port addresses. Received: "
                            f"{job}={addresses}")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise UserError(f"TF_CONFIG's task must name one of the cluster's tasks "
                        f"({', '.join(f'{j} 0-{len(a) - 1}' for j, a in cluster.items())}). "
                        f"Received: task={task}")
    return config


def is_chief(config: dict) -> bool:
    """TensorFlow's rule: the chief task, or worker 0 when the cluster has no chief. The chief
    writes the run folder; the other workers write nothing there."""
    kind, index = config["task"]["type"], config["task"]["index"]
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config["cluster"])


def loopback_tf_configs(n: int) -> list[str]:
    """TF_CONFIG for each of n workers on free loopback ports: multi-worker training tried on one
    machine (the tests, bench/train.py). The ports are free when chosen; a worker binds its own."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    workers = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
            for i in range(n)]


def peers(config: dict) -> list[tuple[str, str]]:
    """(name, host:port) of every other task of the cluster."""
    me = (config["task"]["type"], config["task"]["index"])
    return [(f"{job} {i}", address) for job, addresses in config["cluster"].items()
            for i, address in enumerate(addresses) if (job, i) != me]


def answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def make_strategy(timeout: float):
    """MultiWorkerMirroredStrategy from TF_CONFIG, once every worker has come up; after `timeout`
    seconds without them, a one-line error naming those that did not. Call it before any other
    TensorFlow work.

    TensorFlow's coordination service (which MultiWorkerMirroredStrategy configures itself, with
    no limit) is configured here first, the same way, with a registration barrier of `timeout`.
    The barrier's switch has no argument in configure_coordination_service, so it is set on the
    configuration the context holds (tests/test_training_multiworker.py checks that it still works).
    """
    config = read_tf_config(os.environ.get("TF_CONFIG"))
    import tensorflow as tf
    from tensorflow.python.eager import context
    leader = "chief" if "chief" in config["cluster"] else "worker"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0",
        cluster_register_timeout_in_ms=int(timeout * 1000))
    context.context().coordination_service.cluster_register_with_barrier = True
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError):
        absent = [f"{name} ({address})" for name, address in peers(config) if not answers(address)]
        raise UserError(f"{', '.join(absent) or 'a worker of TF_CONFIG'} did not come up within "
                        f"worker_timeout={timeout:g} s; start every worker of TF_CONFIG, each with "
                        "its own task index, or check the addresses") from None
    return strategy


def in_use(strategy) -> bool:
    import tensorflow as tf
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def shard_of(context) -> tuple[int, int, int]:
    """gacrystal.training.data's shard for one worker's input pipeline: its replicas' pieces."""
    local = context.num_replicas_in_sync // context.num_input_pipelines
    return context.input_pipeline_id * local, local, context.num_replicas_in_sync


def private_backup(backup: Path) -> Path:
    """The backup folder of a worker other than the chief: a temporary one of its own, starting as
    a copy of the chief's (which every worker resumes from). TensorFlow's rule for multi-worker
    checkpoints: every worker saves, into its own place, and only the chief's is kept."""
    folder = Path(tempfile.mkdtemp(prefix="gacrystal-backup-"))
    if backup.is_dir():
        shutil.copytree(backup, folder, dirs_exist_ok=True)
    return folder


def training_step(model, strategy):
    """A tf.function: one step of every replica on its piece of the next global batch; returns
    (summed loss, correct predictions, images) of the global batch, all-reduced."""
    import keras
    import tensorflow as tf
    per_image_loss = keras.losses.get(model.loss)  # the compiled loss, per image

    def replica_step(images, labels):
        here = tf.cast(tf.shape(labels)[0], tf.float32)
        batch = tf.cast(tf.distribute.get_replica_context().all_reduce("SUM", here), tf.int32)
        with tf.GradientTape() as tape:
            p_pg = model(images, training=True)
            losses = per_image_loss(labels[:, None], p_pg)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = model.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))  # all-reduced
        correct = tf.reduce_sum(keras.metrics.binary_accuracy(labels[:, None], p_pg))
        return tf.stack([tf.reduce_sum(losses), correct, here])

    @tf.function
    def step(batches):
        return strategy.reduce("SUM", strategy.run(replica_step, args=next(batches)), axis=None)
    return step


def validation_predictor(model, strategy, pipeline, n_images: int, batch_size: int):
    """() -> every validation image's P(PG), in order, identical on every worker. Each replica
    predicts its piece of each batch; the pieces, put at their rows of a vector of zeros, are
    summed across the workers (exactly: each row is one number plus zeros).

    pipeline: the validation split's make_dataset with its arguments (training.load_splits).
    """
    import tensorflow as tf
    pieces = strategy.num_replicas_in_sync
    short = n_images % batch_size
    padding = pieces - short if 0 < short < pieces else 0  # so that every piece has an image
    paths = list(pipeline.keywords["paths"])
    rows = np.arange(n_images + padding, dtype=np.float32)  # the labels carry each image's row
    rows[n_images:] = n_images  # padding: one row past the end, dropped
    batches = strategy.distribute_datasets_from_function(lambda context: pipeline(
        paths=paths + paths[:1] * padding, labels=rows, shard=shard_of(context)))

    def replica_predict(images, rows):
        p_pg = tf.cast(model(images, training=False)[:, 0], tf.float32)
        spread = tf.scatter_nd(tf.cast(rows, tf.int32)[:, None], p_pg, [n_images + 1])
        return tf.distribute.get_replica_context().all_reduce("SUM", spread)

    @tf.function
    def predict_batch(batch):
        return strategy.experimental_local_results(strategy.run(replica_predict, args=batch))[0]

    def predict():
        return sum(predict_batch(batch).numpy() for batch in batches)[:n_images]
    return predict


def fit(model, strategy, pipeline, n_images: int, batch_size: int, epochs: int, callbacks: list,
        verbose: int):
    """Trains like model.fit(dataset, epochs, steps_per_epoch, callbacks) does, on every worker.

    pipeline: the training split's make_dataset with its arguments (training.load_splits); each
    worker builds its own, cut to its pieces.
    """
    import keras
    import tensorflow as tf
    from gacrystal.training.data import steps_per_epoch
    from gacrystal.training.keras_state import initial_epoch
    steps = steps_per_epoch(n_images, batch_size, strategy.num_replicas_in_sync)
    batches = iter(strategy.distribute_datasets_from_function(
        lambda context: pipeline(shard=shard_of(context))))
    with strategy.scope():  # its variables belong to the strategy, made before any step
        model.optimizer.build(model.trainable_variables)
    step = training_step(model, strategy)
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                             model=model, verbose=verbose, epochs=epochs,
                                             steps=steps)
    model.stop_training = False
    callbacks.on_train_begin()  # the backup, if any, is restored here
    logs, epoch = {}, initial_epoch(model)
    try:
        for epoch in range(initial_epoch(model), epochs):
            callbacks.on_epoch_begin(epoch)
            totals = np.zeros(3)  # loss, correct, images: over every worker
            for batch in range(steps):
                callbacks.on_train_batch_begin(batch)
                totals += step(batches).numpy()
                logs = {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]}
                callbacks.on_train_batch_end(batch, logs)
                if model.stop_training:
                    break
            logs = dict(logs)
            callbacks.on_epoch_end(epoch, logs)  # the callbacks add the validation's logs
            if model.stop_training:
                break
    except (tf.errors.UnavailableError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError) as error:
        lost = sorted({f"{job} {task}" for job, task in
                       re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error))})
        raise UserError(f"a worker stopped answering in epoch {epoch + 1} "
                        f"({', '.join(lost) or type(error).__name__}); every completed epoch is "
                        "saved: start every worker again with the same command to go on") from error
    model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs)
