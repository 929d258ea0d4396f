"""Calibrated confidence: temperature scaling of P(PG), and how to measure calibration.

A network trained to F1 0.997 says 0.99+ for nearly everything, its mistakes included, so the raw
sigmoid cannot say what "0.9" means. Temperature scaling (Guo et al., 2017) divides the network's
logit by one number T, fitted on labelled images the network was not trained on (the validation
split) by minimising the log loss: P(PG) = sigmoid(logit / T). T > 1 softens an over-confident
model. The sign of the logit never changes, so the class decision at P(PG) = 0.5 stays the same.

The expected calibration error (ECE) here: the images are binned by the confidence of their label
(max(P, 1 - P), 10 equal bins from 0.5 to 1); ECE is the mean over images of |accuracy of the bin
- mean confidence of the bin|. 0 is perfectly calibrated.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gacrystal.images import predicted_labels

METHOD = "temperature scaling"
BINS = 10
T_MAX = 200.0  # the highest temperature fitted
EPS = 1e-7  # Keras's epsilon: probabilities are clipped to [EPS, 1 - EPS] before the logit


def logit(p_pg) -> np.ndarray:
    p = np.clip(np.asarray(p_pg, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(p_pg, temperature: float) -> np.ndarray:
    """Calibrated P(PG) from the network's raw P(PG) (SciPy's expit: no overflow where a small
    temperature fitted to perfectly separated images makes the logit large)."""
    from scipy.special import expit
    return expit(logit(p_pg) / temperature)


def log_loss(labels, p_pg) -> float:
    labels = np.asarray(labels, np.float64).ravel()
    p = np.clip(np.asarray(p_pg, np.float64).ravel(), EPS, 1 - EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def fit_temperature(labels, p_pg) -> float:
    """The temperature that minimises the log loss of the labelled images (T in 0.02..T_MAX).

    When the network labels every one of them right, the log loss falls all the way to T -> 0
    (every P(PG) pushed to 0 or 1), which a finite set cannot justify: measured on a demo run,
    199 perfectly separated validation images gave T = 0.045. Then T is kept at 1 or above.
    """
    from scipy.optimize import minimize_scalar
    result = minimize_scalar(lambda log_t: log_loss(labels, apply_temperature(p_pg, np.exp(log_t))),
                             bounds=(np.log(0.02), np.log(T_MAX)), method="bounded")
    temperature = float(np.exp(result.x))
    if np.array_equal(predicted_labels(p_pg), np.asarray(labels).astype(int).ravel()):
        return max(temperature, 1.0)
    return temperature


def temperature_warning(temperature: float) -> str | None:
    """A line when the fit ran into T_MAX: every P(PG) flattened to about 0.5, because the
    network's P(PG) tells these images' classes apart no better than a coin."""
    if temperature < 0.99 * T_MAX:
        return None
    return (f"warning: the temperature reached its limit ({T_MAX:g}): on these images the model "
            "does no better than chance, so every calibrated P(PG) is near 0.5. Check that the "
            "images are the model's kind and its labels the right way round (CEX = 0, PG = 1)")


def reliability(labels, p_pg, bins: int = BINS) -> list[dict]:
    """Per confidence bin: images, mean confidence and accuracy (the reliability diagram)."""
    labels = np.asarray(labels).astype(int).ravel()
    p = np.asarray(p_pg, np.float64).ravel()
    confidence = np.maximum(p, 1 - p)
    correct = predicted_labels(p) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [{"low": float(edges[b]), "high": float(edges[b + 1]), "images": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()) if (which == b).any() else None,
             "accuracy": float(correct[which == b].mean()) if (which == b).any() else None}
            for b in range(bins)]


def expected_calibration_error(labels, p_pg, bins: int = BINS) -> float:
    rows = [r for r in reliability(labels, p_pg, bins) if r["images"]]
    total = sum(r["images"] for r in rows)
    return float(sum(r["images"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def fit_calibration(labels, p_pg, held_out_labels=None, held_out_p_pg=None,
                    fitted_on: str = "") -> dict:
    """The calibration record kept in a model card: the temperature fitted on (labels, p_pg), and
    the ECE before and after on held-out images (where given)."""
    temperature = fit_temperature(labels, p_pg)
    record = {"method": METHOD, "temperature": temperature,
              "fitted_on": fitted_on or f"{len(np.ravel(labels))} labelled images"}
    if held_out_labels is not None and len(held_out_labels):
        record["ece_before"] = expected_calibration_error(held_out_labels, held_out_p_pg)
        record["ece_after"] = expected_calibration_error(
            held_out_labels, apply_temperature(held_out_p_pg, temperature))
        record["held_out_images"] = int(len(held_out_labels))
    return record


def sidecar_path(model_path: Path) -> Path:
    """Where a calibration fitted after the fact (GAcalibrate.py) lives: MODEL_STEM.calibration.json."""
    return model_path.with_name(f"{model_path.stem}.calibration.json")


def load_sidecar(model_path: Path) -> dict | None:
    path = sidecar_path(model_path)
    return json.loads(path.read_text()) if path.is_file() else None
