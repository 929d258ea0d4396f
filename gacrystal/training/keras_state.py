"""The Keras internals that bit-exact resume relies on, kept in one place.

Keras's own backups (BackupAndRestore) save weights, optimizer state and the epoch, but not:

- where each random layer's stream is (dropout, augmentation): a `SeedGenerator` keeps it in a
  variable whose path ends in "seed_generator_state", found here by that suffix;
- an EarlyStopping callback's best loss and patience count: they are replayed from the logs of the
  earlier epochs with its `_set_monitor_op` and `_is_improvement` methods (private);
- the epoch a restored backup starts at: BackupAndRestore leaves it in the model's
  `_initial_epoch` (private), which fit() reads and the multi-worker loop reads too.

None is public API. tests/test_training_keras_state.py checks each against the installed Keras, so
an upgrade that renames them fails there, loudly, instead of silently breaking exact resume.
"""
from __future__ import annotations

SEED_STATE_SUFFIX = "seed_generator_state"


def seed_states(models) -> list:
    """The random-stream state variables of the models' layers (augmentation, dropout)."""
    return [v for model in models if model is not None for v in model.variables
            if v.path.endswith(SEED_STATE_SUFFIX)]


def random_state(models) -> list:
    """Where the models' random streams are (saved with each epoch's backup: Keras's own weight
    files leave them out)."""
    return [v.numpy().tolist() for v in seed_states(models)]


def restore_random_state(models, state: list):
    """Puts the models' random streams where a resumed run's backup says they were."""
    for variable, value in zip(seed_states(models), state):
        variable.assign(value)


def replay_early_stopping(callback, earlier_logs: list[dict]):
    """Replays earlier epochs' logs into a freshly reset keras.callbacks.EarlyStopping: its best
    value, best epoch and wait count end as if it had seen those epochs."""
    if callback.monitor_op is None:
        callback._set_monitor_op()
    for epoch, logs in enumerate(earlier_logs):
        callback.wait += 1
        if callback._is_improvement(logs[callback.monitor], callback.best):
            callback.best, callback.best_epoch, callback.wait = logs[callback.monitor], epoch, 0


def initial_epoch(model) -> int:
    """The epoch training starts at: where BackupAndRestore's on_train_begin restored the model
    to, or 0."""
    return getattr(model, "_initial_epoch", None) or 0
