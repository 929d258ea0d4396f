"""Calibrated confidence: temperature scaling lowers the calibration error of an over-confident
model without changing any decision at 0.5; training records it, labelling reports it."""
import json

import numpy as np
import pytest

from gacrystal import load_classifier
from gacrystal.calibration import (T_MAX, apply_temperature, expected_calibration_error,
                                   fit_calibration, fit_temperature, log_loss,
                                   temperature_warning)
from gacrystal.images import predicted_labels
from gacrystal.onnx_io import CARD_KEY


def over_confident(n=2000, seed=0, sharpen=4.0):
    """Labels drawn from true probabilities, and a model that reports those probabilities
    sharpened (its logits multiplied by `sharpen`): right as often, far more sure."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return labels, 1 / (1 + np.exp(-sharpen * true_logit))


def test_temperature_scaling_lowers_the_error_of_an_over_confident_model():
    labels, p_raw = over_confident()
    held_labels, held_p = over_confident(seed=1)
    record = fit_calibration(labels, p_raw, held_labels, held_p)
    assert record["temperature"] == pytest.approx(4.0, rel=0.15)  # it finds the sharpening
    assert record["ece_before"] > 0.1 and record["ece_after"] < record["ece_before"] / 3
    calibrated = apply_temperature(held_p, record["temperature"])
    assert np.array_equal(predicted_labels(calibrated), predicted_labels(held_p))


def test_a_calibrated_model_stays_at_temperature_one():
    labels, p = over_confident(sharpen=1.0)
    assert fit_temperature(labels, p) == pytest.approx(1.0, abs=0.15)
    assert expected_calibration_error(labels, p) < 0.05


def test_perfectly_separated_images_do_not_sharpen_the_model():
    labels = np.array([0] * 50 + [1] * 50)
    p = np.where(labels == 1, 0.7, 0.3)  # every one right, none sure: the loss wants T -> 0
    assert fit_temperature(labels, p) == 1.0
    p[0] = 0.6  # one mistake: then the fit is the log loss's own minimum, here a sharpening
    temperature = fit_temperature(labels, p)

    def loss(t):
        return log_loss(labels, apply_temperature(p, t))
    assert 0.02 < temperature < 0.5  # not kept at 1, not run into the lower bound
    assert loss(temperature) < min(loss(temperature * 1.05), loss(temperature / 1.05), loss(1.0))


def test_a_model_no_better_than_chance_runs_into_the_limit_with_a_warning():
    """Measured by a newcomer's trial: a fine-tune that called every PG CEX, calibrated after the
    fact, gave T = 199.999 and no word about it."""
    labels = np.array([0] * 50 + [1] * 50)
    p = np.full(100, 0.02)  # every image called CEX, surely: PG all wrong
    temperature = fit_temperature(labels, p)
    assert temperature == pytest.approx(T_MAX, rel=0.01)
    assert "no better than chance" in temperature_warning(temperature)
    assert temperature_warning(fit_temperature(*over_confident())) is None


def test_training_keeps_the_calibration_in_the_card_and_labelling_reports_it(runs, split_dir):
    import onnx
    config = json.loads((runs["a"] / "config.json").read_text())
    record = config["model"]["calibration"]
    assert record["temperature"] > 0 and {"ece_before", "ece_after"} <= set(record)
    onnx_card = {p.key: p.value for p in onnx.load(str(runs["a"] / "model.onnx")).metadata_props}
    assert json.loads(onnx_card[CARD_KEY])["calibration"] == pytest.approx(record)
    assert (runs["a"] / "reliability.png").stat().st_size > 10_000
    assert 'id="calibration"' in (runs["a"] / "report.html").read_text()
    files = [str(p) for p in sorted((split_dir / "test").rglob("*.png"))]
    for model in ("model.keras", "model.onnx"):
        classifier = load_classifier(runs["a"] / model)
        records = classifier.label(files)
        raw = np.array([r["p_pg_raw"] for r in records])
        np.testing.assert_allclose([r["p_pg"] for r in records],
                                   apply_temperature(raw, record["temperature"]), atol=1e-6)
        assert [r["label"] for r in records if r["label"] != "UNKNOWN"] == [
            ("PG" if p >= 0.5 else "CEX") for r, p in zip(records, raw) if r["label"] != "UNKNOWN"]


def test_imaging_variety_changes_the_pixels_not_the_shape_and_repeats_for_a_seed():
    from gacrystal.ood import imaging_variety
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    first = imaging_variety(pixels, np.random.default_rng(1))
    again = imaging_variety(pixels, np.random.default_rng(1))
    assert first.shape == pixels.shape and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert 0 <= first.min() and first.max() <= 255
    assert np.abs(first - pixels).mean() > 5


def test_turned_batches_turn_each_image_and_repeat_for_the_seed():
    from gacrystal.images import dihedral
    from gacrystal.ood import turned_batches
    images = np.random.default_rng(0).uniform(0, 255, (40, 8, 8, 3)).astype(np.float32)
    batches = [images[:16], images[16:32], images[32:]]
    first = np.concatenate(list(turned_batches(iter(batches))))
    assert np.array_equal(first, np.concatenate(list(turned_batches(iter(batches)))))
    turns = [next(k for k in range(8) if np.array_equal(dihedral(image, k), turned))
             for image, turned in zip(images, first)]
    assert len(set(turns)) == 8  # every rotation and mirror is drawn, the identity among them


def test_the_statistics_are_fitted_on_turned_images_and_calibrated_on_varied_ones():
    from gacrystal import ood
    rng = np.random.default_rng(0)
    asked = []

    def features_of(paths, variation):
        asked.append((len(paths), variation))
        return rng.normal(0, 1, (len(paths), 6))
    ood.fit_statistics(features_of, list(range(60)), np.arange(60) % 2, list(range(20)), [6])
    assert asked == [(60, ood.turned_batches), (20, ood.varied_batches), (20, None)]
