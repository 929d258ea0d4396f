"""The Keras internals that exact resume relies on (gacrystal/training/keras_state.py). If a Keras
upgrade renames them, these tests fail here, by name, instead of resumed runs silently diverging."""
import keras
import numpy as np

from gacrystal.training.keras_state import (random_state, replay_early_stopping,
                                            restore_random_state, seed_states)


def dropout_model():
    inputs = keras.Input((64,))
    return keras.Model(inputs, keras.layers.Dropout(0.5, seed=1)(inputs))


def test_random_layers_keep_their_stream_in_a_seed_generator_state_variable():
    model = dropout_model()
    assert len(seed_states([model])) == 1, [v.path for v in model.variables]
    augment = keras.Sequential([keras.layers.RandomFlip(seed=3), keras.layers.RandomZoom(0.2, seed=4)])
    augment.build((None, 8, 8, 3))
    assert len(seed_states([augment])) == 2


def test_a_saved_random_state_replays_the_same_dropout_masks():
    model = dropout_model()
    ones = np.ones((4, 64), np.float32)
    model(ones, training=True)  # move the stream on
    saved = random_state([model])
    first = keras.ops.convert_to_numpy(model(ones, training=True))
    fresh = dropout_model()
    restore_random_state([fresh], saved)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fresh(ones, training=True)), first)
    assert not np.array_equal(keras.ops.convert_to_numpy(model(ones, training=True)), first)


def test_early_stopping_replays_best_value_epoch_and_wait():
    callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.001, patience=5)
    callback.on_train_begin()
    replay_early_stopping(callback, [{"val_loss": 0.9}, {"val_loss": 0.5}, {"val_loss": 0.4995},
                                     {"val_loss": 0.6}])
    assert callback.best == 0.5 and callback.best_epoch == 1 and callback.wait == 2


def test_backup_and_restore_leaves_the_epoch_to_start_at_where_initial_epoch_reads_it(tmp_path):
    from gacrystal.training.keras_state import initial_epoch
    model = dropout_model()
    model.compile(optimizer="sgd", loss="mse")
    assert initial_epoch(model) == 0
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    backup.set_model(model)
    backup.on_epoch_end(2)  # three epochs done
    restored = dropout_model()
    restored.compile(optimizer="sgd", loss="mse")
    backup.set_model(restored)
    backup.on_train_begin()
    assert initial_epoch(restored) == 3
