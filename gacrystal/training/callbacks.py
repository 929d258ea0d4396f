"""Training callbacks: one validation pass per epoch, the F1 stop rule, and the val-loss early stop.

Order matters: ValidationMetrics must come first in the callbacks list, because it writes val_loss,
val_accuracy and the per-class metrics into the epoch's logs, which the later callbacks (and Keras's
History and progress bar, which Keras appends last) read.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import keras
from sklearn.metrics import classification_report, precision_recall_fscore_support

from gacrystal.files import append_csv, csv_header, write_text_atomic
from gacrystal.images import CLASS_NAMES, DECISION_THRESHOLD, predicted_labels
from gacrystal.training.keras_state import replay_early_stopping


def classification_metrics(labels, p_pg, threshold=DECISION_THRESHOLD, prefix="val_") -> dict[str, float]:
    """Loss, accuracy, and per-class and averaged precision, recall and F1 from P(PG).

    Keys: {prefix}loss, {prefix}accuracy, {prefix}precision_CEX ... {prefix}f1_PG,
    {prefix}f1_macro, {prefix}f1_weighted (and the same for precision and recall).
    """
    labels = np.asarray(labels).astype(int)
    p_pg = np.asarray(p_pg, np.float64).ravel()
    predicted = predicted_labels(p_pg, threshold)
    eps = 1e-7  # Keras's epsilon, so this loss equals the training loss's definition
    clipped = np.clip(p_pg, eps, 1 - eps)
    metrics = {
        f"{prefix}loss": float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))),
        f"{prefix}accuracy": float(np.mean(predicted == labels)),
    }
    per_class = precision_recall_fscore_support(labels, predicted, labels=[0, 1], zero_division=0)
    for name, values in zip(("precision", "recall", "f1"), per_class[:3]):
        for class_name, value in zip(CLASS_NAMES, values):
            metrics[f"{prefix}{name}_{class_name}"] = float(value)
    for average in ("macro", "weighted"):
        averaged = precision_recall_fscore_support(labels, predicted, labels=[0, 1],
                                                   average=average, zero_division=0)
        for name, value in zip(("precision", "recall", "f1"), averaged[:3]):
            metrics[f"{prefix}{name}_{average}"] = float(value)
    return metrics


def report_text(labels, p_pg, threshold=DECISION_THRESHOLD) -> str:
    """scikit-learn's classification report with the right class names, 4 digits."""
    predicted = predicted_labels(p_pg, threshold)
    return classification_report(np.asarray(labels).astype(int), predicted, labels=[0, 1],
                                 target_names=list(CLASS_NAMES), digits=4, zero_division=0)


class ValidationMetrics(keras.callbacks.Callback):
    """Runs the validation images through the model once per epoch and logs every metric from it.

    The original evaluated the validation set three times per epoch (fit's validation, then two
    callbacks) and dropped the last partial batch; here one predict() over every image feeds the
    loss, the accuracy, the class-wise report and the F1 stop rule.

    predictor: () -> P(PG) of every validation image, in order, instead of the model's predict()
    over `dataset` (several workers: gacrystal.training.multiworker.validation_predictor).
    """

    def __init__(self, dataset, labels, verbose=True, predictor=None):
        super().__init__()
        self.dataset, self.labels, self.verbose = dataset, np.asarray(labels), verbose
        self.predictor = predictor
        self.passes = 0  # validation passes so far (the tests count them)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        p_pg = (self.predictor() if self.predictor is not None
                else self.model.predict(self.dataset, verbose=0)[:, 0])
        self.passes += 1
        if logs is not None:
            logs.update(classification_metrics(self.labels, p_pg))
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
            logs["epoch_seconds"] = time.perf_counter() - self.epoch_started  # validation included
        if self.verbose:
            print(f"\nEpoch {epoch + 1} - validation ({len(self.labels)} images):\n"
                  + report_text(self.labels, p_pg))


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first training batch whose loss is NaN or infinite, or at the end of an epoch
    that left a weight NaN or infinite (a loss can blow up to 1e32 and stay finite while the
    BatchNorm statistics overflow), and remembers where: (epoch, batch, or None for the end)."""

    def __init__(self):
        super().__init__()
        self.where = None  # (epoch, batch) of the first bad loss
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and self.where is None and not np.isfinite(float(loss)):
            self.where = (self.epoch, batch)
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.where is None and not all(np.isfinite(keras.ops.convert_to_numpy(w)).all()
                                          for w in self.model.weights):
            self.where = (epoch, None)
            self.model.stop_training = True


class HistoryRows(keras.callbacks.Callback):
    """history.csv: the epoch's logs appended as a row when it ends (a crash keeps every completed
    epoch), by the project's one CSV rule (gacrystal.files: floats with 10 significant digits),
    which write_history also follows when a resumed run cuts the file back: one format, written
    and read. The columns are the epoch and the logs' names in order, or the file's own."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{name: float(value) for name, value in (logs or {}).items()}}
        has_rows = self.path.exists() and self.path.stat().st_size > 0
        columns = csv_header(self.path) if has_rows else ["epoch", *sorted(logs or {})]
        append_csv(self.path, [{name: row.get(name) for name in columns}], columns)


class BackupEachEpoch(keras.callbacks.BackupAndRestore):
    """Keras's backup-and-restore after each completed epoch, skipping an epoch that went NaN.

    The backup (weights, optimizer state, epoch number) stays after training; GAmain removes it
    once every deliverable is written, so a crash while saving can still be resumed.
    """

    def __init__(self, backup_dir, nan_guard: StopOnNaN, extra_state=None):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=True,
                         delete_checkpoint=False)
        self.nan_guard = nan_guard
        self.extra_state = extra_state  # () -> {file name: JSON-able}, saved with each backup

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_guard.where is not None:
            return
        if self.extra_state is not None:  # first: the epoch number, written last, commits it
            os.makedirs(self.backup_dir, exist_ok=True)
            for name, value in self.extra_state().items():
                write_text_atomic(os.path.join(self.backup_dir, name), json.dumps(value))
        super().on_epoch_end(epoch, logs)


class StopWhenF1Reached(keras.callbacks.Callback):
    """Stops training once both classes' validation F1 reach the threshold (the original's rule).

    patience: how many further epochs the rule must hold before stopping (0: stop at once).
    earlier_logs: the logs of the epochs before a resumed run's first, to carry the count over.
    """

    def __init__(self, threshold=0.997, patience=0, earlier_logs=()):
        super().__init__()
        self.threshold, self.patience = threshold, patience
        self.epochs_met = 0
        for logs in earlier_logs:
            self.epochs_met = self._count(logs)
        self.stopped_epoch = None

    def _count(self, logs) -> int:
        f1 = [logs[f"val_f1_{name}"] for name in CLASS_NAMES]
        return self.epochs_met + 1 if min(f1) >= self.threshold else 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_met = self._count(logs)
        if self.epochs_met > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            f1 = [logs[f"val_f1_{name}"] for name in CLASS_NAMES]
            print(f"Epoch {epoch + 1}: validation F1 of CEX {f1[0]:.4f} and PG {f1[1]:.4f} "
                  f"both reached {self.threshold}; stopping.")


class EarlyStopOnValLoss(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping on val_loss, restoring the best weights only when it stops the run.

    That is Keras 2's behaviour, which the original relied on. Keras 3 also restores them when the
    run ends any other way, which would replace the weights that met the F1 rule with others.
    """

    def __init__(self, patience=50, min_delta=0.001, earlier_logs=()):
        super().__init__(monitor="val_loss", patience=patience, min_delta=min_delta,
                         restore_best_weights=True, verbose=1)
        self.earlier_logs = list(earlier_logs)

    def on_train_begin(self, logs=None):
        """Resets, then replays a resumed run's earlier epochs: best loss, its epoch, the wait.
        (Their weights are gone; the first resumed epoch's stand in for them.)"""
        super().on_train_begin(logs)
        replay_early_stopping(self, self.earlier_logs)

    def on_train_end(self, logs=None):
        if self.stopped_epoch == 0:
            self.best_weights = None  # it did not stop the run: keep the final weights
        super().on_train_end(logs)
