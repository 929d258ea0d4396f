"""Training steps: the data, the compiled model, fit() with its callbacks, the out-of-distribution
check, the test evaluation and the saved model files. GAmain.py calls them in order.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from gacrystal import ood, runs
from gacrystal.errors import UserError
from gacrystal.images import CLASS_NAMES, DECISION_THRESHOLD, predicted_labels


def load_splits(data: str | Path, image_size: int, resize: str, batch_size: int, augment: bool,
                seed: int, first_epoch: int = 0, rotation_range: float = 30) -> dict:
    """Paths, labels and tf.data pipelines of train, val and test (the training pipeline starts
    at first_epoch's shuffle order: a resumed run's). Each split's "pipeline" is make_dataset
    with the split's arguments, for variants of its "dataset" (several workers: their shards)."""
    import functools
    from gacrystal.data import (augmentation, check_split_folder, drop_unreadable, list_split,
                                make_dataset)
    check_split_folder(data)
    splits = {}
    for split in ("train", "val", "test"):
        paths, labels = list_split(Path(data, split))
        paths, labels, skipped = drop_unreadable(paths, labels, image_size, resize)
        for path, reason in skipped:
            print(f"skipped {path}: {reason}")
        if len(set(labels.tolist())) < 2:
            raise UserError(f"{Path(data, split)} has no readable images of one class")
        augmenter = augmentation(seed, rotation_range) if split == "train" and augment else None
        pipeline = functools.partial(make_dataset, paths=paths, labels=labels,
                                     image_size=image_size, batch_size=batch_size,
                                     shuffle=split == "train", augment=augmenter, seed=seed,
                                     resize=resize, first_epoch=first_epoch)
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
                      total_steps: int = 0):
    """The classifier, compiled with the original's optimizer and loss. Under a tf.distribute
    strategy, call it inside the strategy's scope.

    Args:
        lr_schedule: constant (the original), or cosine: from lr down to 0 over total_steps, so
            that the last epochs take small steps and the final weights do not land on a swing.
    """
    import keras
    from gacrystal.model import build_classifier
    model = build_classifier(backbone, weights, image_size, trainable_fraction, dropout,
                             bn_momentum)
    if lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total_steps, 1))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr, momentum=momentum),
                  loss="binary_crossentropy", metrics=["accuracy"], jit_compile=jit_compile)
    return model


def train(model, splits: dict, run_dir: Path, epochs: int, batch_size: int, f1_stop: float,
          f1_patience: int, loss_patience: int, loss_min_delta: float, from_scratch: bool,
          strategy=None, chief: bool = True):
    """fit() with the validation, stop-rule, NaN, backup and CSV-log callbacks; on several workers
    (MultiWorkerMirroredStrategy), gacrystal.multiworker.fit with the same callbacks.

    A resumed run continues from the backup's epoch; history.csv is first cut back to the epochs
    the backup holds (a crash can fall between writing a row and the backup).

    Args:
        chief: False on a worker other than the chief: it reads the run folder but writes its
            backups in a temporary folder of its own, and no history.csv.

    Returns:
        (the history of every epoch, from history.csv; what stopped the run).
    """
    import keras
    from gacrystal import multiworker
    from gacrystal.callbacks import (BackupEachEpoch, EarlyStopOnValLoss, StopOnNaN,
                                     StopWhenF1Reached, ValidationMetrics)
    from gacrystal.data import steps_per_epoch
    from gacrystal.keras_state import random_state, restore_random_state
    earlier = runs.read_history(run_dir, before_epoch=runs.backed_up_epochs(run_dir))
    if chief:
        runs.write_history(run_dir, earlier)
    if earlier:
        print(f"resuming after epoch {len(earlier)} from {run_dir / runs.BACKUP}")
        restore_random_state([model], json.loads((run_dir / runs.BACKUP / runs.RANDOM_STATE)
                                                 .read_text()))
    several = multiworker.in_use(strategy)
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
        *([keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True)] if chief else []),
        BackupEachEpoch(backup_dir, nan_guard,  # after the CSV row: see its docstring
                        extra_state=lambda: {runs.RANDOM_STATE: random_state([model])}),
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


def fit_ood_check(scorer, sizes: list[int], splits: dict, image_size: int, resize: str,
                  batch_size: int, run_dir: Path) -> tuple[list[dict], dict, np.ndarray]:
    """Fits the out-of-distribution statistics with the one recipe (gacrystal.ood.fit_statistics)
    on un-augmented training images and saves them as ood.npz beside the model.

    Returns:
        (the statistics, their summary for config.json, the validation images' raw P(PG) from
        the same pass, which the calibration is fitted on).
    """
    import tensorflow as tf
    from gacrystal.data import make_dataset
    started = time.time()
    p_pg = []  # per pass; fit_statistics reads the training images first, the validation last

    def features_of(paths, variation):
        if paths == splits["val"]["paths"]:  # decoded and cached already
            dataset = splits["val"]["dataset"]
        else:
            dataset = make_dataset(paths, np.zeros(len(paths)), image_size, batch_size,
                                   resize=resize)
        if variation:
            pixels = np.concatenate(list(variation(x.numpy() for x, _ in dataset)))
            # A dataset like the others (batch dimension unknown), not an array: predict() then
            # traces the scorer once for every pass here and in `evaluate`, not once per pass.
            dataset = tf.data.Dataset.from_tensor_slices(
                (pixels.astype(np.float32), np.zeros(len(pixels), np.float32))).batch(batch_size)
            return scorer.predict(dataset, verbose=0)[1]
        outputs = scorer.predict(dataset, verbose=0)
        p_pg.append(outputs[0][:, 0])
        return outputs[1]
    stages, summary = ood.fit_statistics(features_of, splits["train"]["paths"],
                                         splits["train"]["labels"], splits["val"]["paths"], sizes)
    ood.save(stages, run_dir / ood.FILE_NAME)
    summary.update(file=ood.FILE_NAME, seconds=round(time.time() - started, 1))
    print(f"out-of-distribution check fitted on {summary['fit_images']} training images; "
          f"{100 * summary['val_pass_rate']:.1f}% of validation images pass, "
          f"{100 * summary['varied_val_pass_rate']:.1f}% under other imaging conditions")
    return stages, summary, p_pg[-1]


def calibrate(val_labels, val_p_pg, test: dict, test_labels) -> dict:
    """Temperature scaling fitted on the validation images, its effect measured on the test
    split; the record goes into the model card (config.json and model.onnx)."""
    from gacrystal.calibration import fit_calibration
    record = fit_calibration(val_labels, val_p_pg, test_labels, test["p_pg"],
                             fitted_on=f"{len(val_labels)} validation images")
    print(f"calibration: temperature {record['temperature']:.3f}; expected calibration error on "
          f"the test split {record['ece_before']:.4f} -> {record['ece_after']:.4f}")
    return record


def evaluate(scorer, split: dict, ood_stages: list[dict]) -> dict:
    """P(PG) and ood_score for every image of a split (one pass), and the metrics and report."""
    from sklearn.metrics import confusion_matrix
    from gacrystal.callbacks import classification_metrics, report_text
    p_pg, features = scorer.predict(split["dataset"], verbose=0)
    p_pg = p_pg[:, 0]
    labels = split["labels"]
    return {"p_pg": p_pg, "ood_score": ood.scores(ood_stages, features),
            "metrics": classification_metrics(labels, p_pg, prefix="test_"),
            "report": report_text(labels, p_pg),
            "confusion": confusion_matrix(labels.astype(int), predicted_labels(p_pg),
                                          labels=[0, 1])}


def save_models(model, scorer, run_dir: Path, card: dict, export_onnx: bool) -> list[Path]:
    """The trained model as .keras, legacy .h5 and (optionally) .onnx, each written under a
    temporary name and renamed when complete (a crash never leaves a truncated model file).

    The .onnx file is the scoring model: outputs P(PG) and the out-of-distribution features, so
    that ONNX Runtime can reject foreign images too."""
    import absl.logging
    from gacrystal import onnx_io
    from gacrystal.files import atomic_path
    files = [run_dir / "model.keras", run_dir / "model.h5"]
    with atomic_path(files[0]) as temporary:
        model.save(temporary)
    verbosity = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras warns that .h5 is legacy: we know
    with atomic_path(files[1]) as temporary:
        model.save(temporary)
    absl.logging.set_verbosity(verbosity)
    if export_onnx:
        print("exporting model.onnx (about 15 s for ResNet-101) ...")
        files.append(run_dir / "model.onnx")
        with atomic_path(files[-1]) as temporary, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_io.export_onnx(scorer, temporary, card)
    return files


def write_results(model, run_dir: Path, history: dict, test: dict, test_split: dict,
                  config: dict, image_size: int, resize: str, leak_report: str | None) -> float:
    """The curves, the confusion matrix, test_report.txt and report.html; returns the seconds the
    report took."""
    from gacrystal.report import (gallery_html, plot_confusion_matrix, plot_history,
                                  plot_reliability, write_html_report)
    plot_history(history, run_dir / "training_curves.png")
    plot_confusion_matrix(test["confusion"], run_dir / "confusion_matrix.png")
    calibration = config["model"].get("calibration")
    if calibration:
        plot_reliability(test_split["labels"], test["p_pg"], calibration["temperature"],
                         run_dir / "reliability.png")
    (run_dir / "test_report.txt").write_text(
        f"Test set: {len(test['p_pg'])} images, threshold P(PG) >= {DECISION_THRESHOLD} -> PG\n\n"
        f"{test['report']}")
    started = time.time()
    gallery = gallery_html(model, test_split["paths"], test_split["labels"], test["p_pg"],
                           test["ood_score"], image_size, resize)
    write_html_report(run_dir / "report.html", config, history, gallery, run_dir, leak_report)
    return round(time.time() - started, 2)
