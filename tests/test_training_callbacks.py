"""Validation metrics from one pass, and the F1 stop rule on fabricated predictions."""
import numpy as np
import pytest

from gacrystal.training.callbacks import (EarlyStopOnValLoss, StopWhenF1Reached,
                                          classification_metrics, report_text)


class FakeModel:
    stop_training = False


def f1_logs(cex, pg):
    return {"val_f1_CEX": cex, "val_f1_PG": pg}


def run_rule(rule, epochs):
    rule.set_model(FakeModel())
    for epoch, logs in enumerate(epochs):
        rule.on_epoch_end(epoch, logs)
        if rule.model.stop_training:
            return epoch
    return None


def test_f1_rule_stops_when_both_classes_reach_the_threshold():
    assert run_rule(StopWhenF1Reached(0.997), [f1_logs(0.99, 0.99), f1_logs(0.998, 0.997)]) == 1


def test_f1_rule_needs_both_classes():
    epochs = [f1_logs(1.0, 0.996), f1_logs(0.996, 1.0), f1_logs(1.0, 0.9969)]
    assert run_rule(StopWhenF1Reached(0.997), epochs) is None


def test_f1_rule_patience_needs_consecutive_epochs():
    epochs = [f1_logs(1, 1), f1_logs(0.9, 1), f1_logs(1, 1), f1_logs(1, 1)]
    assert run_rule(StopWhenF1Reached(0.997, patience=1), epochs) == 3


def test_metrics_from_known_predictions():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p_pg = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.4])  # one error in each class
    m = classification_metrics(labels, p_pg)
    assert m["val_accuracy"] == 0.75
    assert m["val_precision_CEX"] == m["val_recall_CEX"] == m["val_f1_CEX"] == 0.75
    assert m["val_f1_PG"] == 0.75 and m["val_f1_macro"] == 0.75
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.7, 0.1, 0.8, 0.7, 0.6, 0.4]))
    assert m["val_loss"] == pytest.approx(expected_loss)
    report = report_text(labels, p_pg)
    assert "CEX" in report.splitlines()[2] and "PG" in report.splitlines()[3]


def test_a_perfect_pg_predictor_is_scored_as_perfect_with_names_the_right_way_round():
    labels = np.array([0, 1, 1])
    m = classification_metrics(labels, [0.0, 1.0, 1.0])
    assert m["val_f1_CEX"] == m["val_f1_PG"] == 1.0
    m = classification_metrics(labels, [1.0, 1.0, 1.0])  # always "PG"
    assert m["val_recall_PG"] == 1.0 and m["val_recall_CEX"] == 0.0


def early_stop_run(patience, val_losses):
    """Runs the rule over val losses, changing the weights every epoch; returns (model, weights)."""
    import keras
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # fit() sets this; the rule sets it to True to stop
    rule = EarlyStopOnValLoss(patience=patience)
    rule.set_model(model)
    rule.on_train_begin()
    weights_per_epoch = []
    for epoch, loss in enumerate(val_losses):
        model.set_weights([w + 1 for w in model.get_weights()])
        weights_per_epoch.append(model.get_weights())
        rule.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            break
    rule.on_train_end()
    return model, weights_per_epoch


def test_val_loss_early_stop_keeps_final_weights_when_it_did_not_stop_the_run():
    model, weights = early_stop_run(5, [1.0, 0.5, 0.9, 0.9])
    for actual, final in zip(model.get_weights(), weights[-1]):
        np.testing.assert_array_equal(actual, final)


def test_val_loss_early_stop_restores_the_best_epoch_when_it_stops():
    model, weights = early_stop_run(2, [1.0, 0.5, 0.9, 0.9, 0.9])
    assert len(weights) == 4  # stopped after two epochs without improvement
    for actual, best in zip(model.get_weights(), weights[1]):
        np.testing.assert_array_equal(actual, best)
