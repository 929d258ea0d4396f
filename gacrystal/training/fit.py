"""Training steps: the data, the compiled model, and fit() with its callbacks. GAmain.py calls
them in order; what is made of the trained model is gacrystal.training.deliverables.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from gacrystal.errors import UserError
from gacrystal.files import HISTORY_CSV
from gacrystal.images import CLASS_NAMES, SYNTHETIC_STAMP
from gacrystal.training import runs


def load_splits(data: str | Path, image_size: int, resize: str, batch_size: int, augment: bool,
                seed: int, first_epoch: int = 0, rotation_range: float = 30) -> dict:
    """Paths, labels and tf.data pipelines of train, val and test (the training pipeline starts
    at first_epoch's shuffle order: a resumed run's). Each split's "pipeline" is make_dataset
    with the split's arguments, for variants of its "dataset" (several workers: their shards)."""
    import functools
    from gacrystal.training.data import (augmentation, check_split_folder, drop_unreadable,
                                         fits_in_memory, list_split, make_dataset)
    check_split_folder(data)
    splits = {}
    for split in ("train", "val", "test"):
        paths, labels = list_split(Path(data, split))
        # The check decodes every file; where they fit in memory, the pipeline's first pass
        # takes those pixels rather than decoding each file a second time.
        decoded = {} if fits_in_memory(len(paths), image_size) else None
        paths, labels, skipped = drop_unreadable(paths, labels, image_size, resize, decoded)
        for path, reason in skipped:
            print(f"skipped {path}: {reason}")
        if len(set(labels.tolist())) < 2:
            raise UserError(f"{Path(data, split)} has no readable images of one class")
        augmenter = augmentation(seed, rotation_range) if split == "train" and augment else None
        pipeline = functools.partial(make_dataset, paths=paths, labels=labels,
                                     image_size=image_size, batch_size=batch_size,
                                     shuffle=split == "train", augment=augmenter, seed=seed,
                                     resize=resize, first_epoch=first_epoch,
                                     decoded=decoded)
        splits[split] = {"paths": paths, "labels": labels, "dataset": pipeline(),
                         "pipeline": pipeline}
    return splits


def class_counts(splits: dict) -> dict:
    return {split: {name: int((part["labels"] == i).sum()) for i, name in enumerate(CLASS_NAMES)}
            for split, part in splits.items()}


def typical_crop_size(paths: list, labels, most: int = 200) -> int | None:
    """The median side in px of the training CEX crops (before resizing): GAmonitor.py cuts whole
    frames into tiles of this size, so that they show what the CEX crops showed."""
    from PIL import Image
    sides = []
    for path, label in zip(paths, labels):
        if int(label) == 0 and len(sides) < most:
            with Image.open(path) as image:
                sides.append(max(image.size))
    return int(np.median(sides)) if sides else None


def model_card_of_run(backbone: str, image_size: int, resize: str, data: str | Path,
                      backbone_weights, splits: dict) -> dict:
    """The model card (gacrystal.model.model_card) with where the backbone's starting weights
    came from (a gacrystal.imagenet.BackboneWeights) and the training crops' typical size."""
    from gacrystal.model import model_card
    card = model_card(backbone, image_size, resize,
                      synthetic=Path(data, SYNTHETIC_STAMP).is_file())
    card["backbone_weights"] = backbone_weights.record()
    card["crop_size"] = typical_crop_size(splits["train"]["paths"], splits["train"]["labels"])
    return card


def start_from(model, init_weights: str):
    """--init_weights: the trained weights of an existing model of the same architecture (to
    fine-tune it, e.g. on corrected crops), its BatchNorm statistics included; the optimizer
    starts afresh."""
    from gacrystal.classifier import load_keras_model, model_file
    path = model_file(init_weights)
    if path.suffix.lower() == ".onnx":
        raise UserError(f"init_weights={init_weights} is an ONNX file; fine-tuning needs the "
                        ".keras (or .h5) model beside it")
    source = load_keras_model(path)
    ours, theirs = [w.shape for w in model.weights], [w.shape for w in source.weights]
    if ours != theirs:
        raise UserError(f"init_weights={init_weights} is another network than this run builds "
                        f"({source.name}, input {source.input_shape[1:3]}; this run: {model.name}, "
                        f"input {model.input_shape[1:3]}); pass the --backbone and --image_size "
                        "it was trained with")
    model.set_weights(source.get_weights())
    print(f"starting from the weights of {path}")


def build_and_compile(backbone: str, weights, image_size: int, trainable_fraction: float,
                      dropout: tuple[float, float], bn_momentum: float, lr: float,
                      momentum: float, jit_compile="auto", lr_schedule="constant",
                      total_steps: int = 0, fold_batchnorm: bool = True):
    """The classifier, and the model that trains it compiled with the original's optimizer and
    loss. Under a tf.distribute strategy, call it inside the strategy's scope.

    Args:
        lr_schedule: constant (the original), or cosine: from lr down to 0 over total_steps, so
            that the last epochs take small steps and the final weights do not land on a swing.
        fold_batchnorm: train through gacrystal.training.folding's network (the frozen trunk's
            BatchNormalization folded into its convolutions; the same variables); False trains
            the classifier itself.

    Returns:
        (the classifier, the compiled model to fit: the classifier itself or its folded twin).
    """
    import keras
    from gacrystal.model import build_classifier
    from gacrystal.training.folding import folded_for_training
    model = build_classifier(backbone, weights, image_size, trainable_fraction, dropout,
                             bn_momentum)
    trainer = folded_for_training(model)[0] if fold_batchnorm else model
    if lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total_steps, 1))
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=momentum),
                    loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model, trainer


def build_model(strategy, architecture: dict, weights, lr: float, momentum: float,
                lr_schedule: str, jit_compile, epochs: int, train_images: int, batch_size: int,
                several_workers: bool, init_weights: str = "", backed_up: int = 0,
                fold_batchnorm: bool = True):
    """The classifier and the compiled model that trains it, in the strategy's scope
    (build_and_compile; architecture: its network's arguments), starting from init_weights's
    trained weights unless a backup's follow (backed_up epochs), its BatchNorm synchronized over
    several replicas. Train the second (train_or_restore); save the first (write_deliverables).
    fold_batchnorm: False for a backup written unfolded (runs.backup_is_folded)."""
    from gacrystal.training.data import steps_per_epoch
    from gacrystal.training.distribution import replicas, scope, synchronize_batchnorm
    # several workers cut each batch into one piece a replica; one too small to cut sits out
    pieces = replicas(strategy) if several_workers else 1
    if not fold_batchnorm:
        print("note: this run's backup was written before training folded the frozen BatchNorm "
              "into its convolutions; the run continues unfolded (slower), as it was backed up")
    with scope(strategy):
        model, trainer = build_and_compile(
            weights=weights, lr=lr, momentum=momentum, lr_schedule=lr_schedule,
            total_steps=epochs * steps_per_epoch(train_images, batch_size, pieces),
            jit_compile=jit_compile, fold_batchnorm=fold_batchnorm, **architecture)
        if init_weights and not backed_up:  # else the backup's weights follow
            start_from(model, init_weights)
        if replicas(strategy) > 1:
            synchronize_batchnorm(model)  # the trainer's BatchNorm layers are the model's
    return model, trainer


def train(model, splits: dict, run_dir: Path, epochs: int, batch_size: int, f1_stop: float,
          f1_patience: int, loss_patience: int, loss_min_delta: float, from_scratch: bool,
          strategy=None, chief: bool = True):
    """fit() with the validation, stop-rule, NaN, backup and CSV-log callbacks; on several workers
    (MultiWorkerMirroredStrategy), gacrystal.training.multiworker.fit with the same callbacks.

    A resumed run continues from the backup's epoch; history.csv is first cut back to the epochs
    the backup holds (a crash can fall between writing a row and the backup).

    Args:
        chief: False on a worker other than the chief: it reads the run folder but writes its
            backups in a temporary folder of its own, and no history.csv.

    Returns:
        (the history of every epoch, from history.csv; what stopped the run).
    """
    import keras
    from gacrystal.training import multiworker
    from gacrystal.training.callbacks import (BackupEachEpoch, EarlyStopOnValLoss, HistoryRows,
                                              StopOnNaN, StopWhenF1Reached, ValidationMetrics)
    from gacrystal.training.data import steps_per_epoch
    from gacrystal.training.folding import is_folded
    from gacrystal.training.keras_state import random_state, restore_random_state
    earlier = runs.read_history(run_dir, before_epoch=runs.backed_up_epochs(run_dir))
    if chief:
        runs.write_history(run_dir, earlier)
    if earlier:
        print(f"resuming after epoch {len(earlier)} from {run_dir / runs.BACKUP}")
        restore_random_state([model], json.loads((run_dir / runs.BACKUP / runs.RANDOM_STATE)
                                                 .read_text()))
    several = multiworker.in_use(strategy)
    folded = is_folded(model)  # the layout of the backups' weights
    train_images, val_images = len(splits["train"]["paths"]), len(splits["val"]["paths"])
    f1_rule = StopWhenF1Reached(f1_stop, f1_patience, earlier)
    loss_rule = EarlyStopOnValLoss(loss_patience, loss_min_delta, earlier)
    nan_guard = StopOnNaN()
    backup_dir = run_dir / runs.BACKUP if chief else multiworker.private_backup(run_dir / runs.BACKUP)
    callbacks = [
        nan_guard,
        ValidationMetrics(splits["val"]["dataset"], splits["val"]["labels"],  # it logs for the rest
                          predictor=multiworker.validation_predictor(
                              model, strategy, splits["val"]["pipeline"], val_images, batch_size)
                          if several else None),
        f1_rule,
        loss_rule,
        *([HistoryRows(run_dir / HISTORY_CSV)] if chief else []),
        BackupEachEpoch(backup_dir, nan_guard,  # after the history row: a saved epoch has one
                        extra_state=lambda: {runs.RANDOM_STATE: random_state([model]),
                                             runs.NETWORK: {"batchnorm_folded": folded}}),
    ]
    verbose = 2 if not sys.stdout.isatty() else 1
    try:
        if several:
            multiworker.fit(model, strategy, splits["train"]["pipeline"], train_images, batch_size,
                            epochs, callbacks, verbose)
        else:
            model.fit(splits["train"]["dataset"], epochs=epochs, callbacks=callbacks,
                      steps_per_epoch=steps_per_epoch(train_images, batch_size),
                      shuffle=False,  # the tf.data pipeline shuffles, seeded
                      verbose=verbose)
    except KeyboardInterrupt:
        again = ("start every worker again with the same command" if several
                 else f"python GAmain.py --resume {run_dir}")
        print(f"\ninterrupted. Every completed epoch is saved; continue with:\n  {again}",
              file=sys.stderr)
        raise
    finally:
        if not chief:
            shutil.rmtree(backup_dir, ignore_errors=True)
    if nan_guard.where is not None:
        lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        raise UserError(nan_message(nan_guard.where, lr, from_scratch, run_dir))
    history = runs.columns(runs.read_history(run_dir)) if chief else {}  # the chief's to read
    return history, stop_reason(f1_rule, loss_rule, epochs)


def stop_reason(f1_rule, loss_rule, epochs: int) -> str:
    if f1_rule.stopped_epoch is not None:
        return f"F1 rule at epoch {f1_rule.stopped_epoch + 1}"
    if loss_rule.stopped_epoch > 0:
        return (f"val-loss early stop at epoch {loss_rule.stopped_epoch + 1} "
                f"(weights of epoch {loss_rule.best_epoch + 1})")
    return f"epoch limit ({epochs})"


def nan_message(where: tuple[int, int | None], lr: float, from_scratch: bool, run_dir: Path) -> str:
    """Why the loss went NaN, most likely, and what to do about it."""
    epoch, batch = where
    cause = (f"the learning rate lr={lr:g} is too high for a network that starts from scratch "
             "(--weights none); lr 0.1 is the original's rate for ImageNet weights"
             if from_scratch else f"the learning rate lr={lr:g} is too high")
    kept = runs.backed_up_epochs(run_dir)
    what = (f"the training loss became NaN in epoch {epoch + 1}, batch {batch + 1}"
            if batch is not None
            else f"the weights became NaN or infinite in epoch {epoch + 1} (the loss diverged)")
    return (f"{what}. Most likely {cause}; start again with a lower one, e.g. --lr {lr / 10:g}. "
            "The last good " + (f"state (epoch {kept}) is kept in {run_dir / runs.BACKUP}" if kept
                                else "state was the initial one; nothing to keep"))


def train_or_restore(model, run_dir: Path, chief: bool = True, **train_args) -> tuple[dict, str]:
    """Trains (see `train` for the arguments); or, when a resumed run had finished training before
    it stopped (while saving), restores the trained weights. Either way the trained weights stay
    in the backup folder until every deliverable is written (by the chief, on several workers)."""
    finished = run_dir / runs.BACKUP / runs.TRAINED
    if finished.exists():
        print("training had finished; writing the deliverables")
        model.load_weights(run_dir / runs.BACKUP / runs.TRAINED_WEIGHTS)
        return (runs.columns(runs.read_history(run_dir)),
                json.loads(finished.read_text())["stopped_by"])
    history, stopped_by = train(model, run_dir=run_dir, chief=chief, **train_args)
    if not chief:
        return history, stopped_by
    model.save_weights(run_dir / runs.BACKUP / runs.TRAINED_WEIGHTS)
    finished.write_text(json.dumps({"stopped_by": stopped_by}))
    return history, stopped_by
