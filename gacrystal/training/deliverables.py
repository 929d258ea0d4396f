"""What a finished training run delivers, in order: the float32 model, its out-of-distribution
check (ood.npz), the test evaluation, the calibration, the model files, config.json and the
report. GAmain.py calls `write_deliverables` once training has stopped.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from gacrystal import ood
from gacrystal.files import MODEL_H5, MODEL_KERAS, MODEL_ONNX, OOD_NPZ
from gacrystal.images import DECISION_THRESHOLD, predicted_labels
from gacrystal.training import runs


def write_deliverables(model, rebuild, strategy, run_dir: Path, splits: dict, card: dict,
                       settings: dict, sources: dict, counts: dict, history: dict,
                       stopped_by: str, started: float) -> dict:
    """Everything after training, on one device in float32 (what labelling will see): returns
    the test split's evaluation. rebuild() builds the same network without weights (the float32
    copy's skeleton); settings and sources are recorded in config.json, and image_size, resize,
    batch_size, export_onnx, resume and data (its leak report, for report.html) are read from
    them."""
    from gacrystal.model import scoring_model
    from gacrystal.training.distribution import float32_copy
    image_size, resize = settings["image_size"], settings["resize"]
    model = float32_copy(model, rebuild, strategy)
    scorer, sizes = scoring_model(model)
    card["feature_sizes"] = sizes  # for fitting OOD statistics to model.onnx later
    ood_stages, ood_summary, val_p_pg = fit_ood_check(scorer, sizes, splits, image_size, resize,
                                                      settings["batch_size"], run_dir)
    test = evaluate(scorer, splits["test"], ood_stages)
    card["calibration"] = calibrate(splits["val"]["labels"], val_p_pg, test,
                                    splits["test"]["labels"])
    files = save_models(model, scorer, run_dir, card, settings["export_onnx"])
    ood_summary["test_pass_rate"] = float((test["ood_score"] <= 1).mean())
    config = runs.run_config(
        settings, sources, card, counts, test=test["metrics"],
        files=files + [run_dir / ood_summary["file"]], ood=ood_summary,
        training={"status": "finished", "epochs_run": len(history["loss"]),
                  "stopped_by": stopped_by, "resumed": bool(settings["resume"]),
                  "elapsed_seconds": round(time.time() - started, 1),
                  "final": {k: v[-1] for k, v in history.items()}})
    leak = Path(settings["data"], "leak_report.txt")  # GAsplit.py's, shown in report.html
    config["report_seconds"] = write_results(model, run_dir, history, test, splits["test"],
                                             config, image_size, resize,
                                             leak.read_text() if leak.exists() else None)
    runs.write_config(run_dir, config)
    runs.drop_backup(run_dir)
    return test


def fit_ood_check(scorer, sizes: list[int], splits: dict, image_size: int, resize: str,
                  batch_size: int, run_dir: Path) -> tuple[list[dict], dict, np.ndarray]:
    """Fits the out-of-distribution statistics with the one recipe (gacrystal.ood.fit_statistics)
    on un-augmented training images and saves them as ood.npz beside the model.

    Returns:
        (the statistics, their summary for config.json, the validation images' raw P(PG) from
        the same pass, which the calibration is fitted on).
    """
    import tensorflow as tf
    from gacrystal.training.data import make_dataset
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
    ood.save(stages, run_dir / OOD_NPZ)
    summary.update(file=OOD_NPZ, seconds=round(time.time() - started, 1))
    print(f"out-of-distribution check fitted on {summary['fit_images']} training images; "
          f"{100 * summary['val_pass_rate']:.1f}% of validation images pass, "
          f"{100 * summary['varied_val_pass_rate']:.1f}% under other imaging conditions")
    return stages, summary, p_pg[-1]


def calibrate(val_labels, val_p_pg, test: dict, test_labels) -> dict:
    """Temperature scaling fitted on the validation images, its effect measured on the test
    split; the record goes into the model card (config.json and model.onnx)."""
    from gacrystal.calibration import fit_calibration, temperature_warning
    record = fit_calibration(val_labels, val_p_pg, test_labels, test["p_pg"],
                             fitted_on=f"{len(val_labels)} validation images")
    print(f"calibration: temperature {record['temperature']:.3f}; expected calibration error on "
          f"the test split {record['ece_before']:.4f} -> {record['ece_after']:.4f}")
    warning = temperature_warning(record["temperature"])
    if warning:
        print(warning)
    return record


def evaluate(scorer, split: dict, ood_stages: list[dict]) -> dict:
    """P(PG) and ood_score for every image of a split (one pass), and the metrics and report."""
    from sklearn.metrics import confusion_matrix
    from gacrystal.training.callbacks import classification_metrics, report_text
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
    files = [run_dir / MODEL_KERAS, run_dir / MODEL_H5]
    with atomic_path(files[0]) as temporary:
        model.save(temporary)
    verbosity = absl.logging.get_verbosity()
    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras warns that .h5 is legacy: we know
    with atomic_path(files[1]) as temporary:
        model.save(temporary)
    absl.logging.set_verbosity(verbosity)
    if export_onnx:
        print("exporting model.onnx (about 15 s for ResNet-101) ...")
        files.append(run_dir / MODEL_ONNX)
        with atomic_path(files[-1]) as temporary, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_io.export_onnx(scorer, temporary, card)
    return files


def write_results(model, run_dir: Path, history: dict, test: dict, test_split: dict,
                  config: dict, image_size: int, resize: str, leak_report: str | None) -> float:
    """The curves, the confusion matrix, test_report.txt and report.html; returns the seconds the
    report took."""
    from gacrystal.training.report import (CONFUSION_PNG, CURVES_PNG, RELIABILITY_PNG, REPORT_HTML,
                                           TEST_REPORT_TXT, gallery_html, plot_confusion_matrix,
                                           plot_history, plot_reliability, write_html_report)
    plot_history(history, run_dir / CURVES_PNG)
    plot_confusion_matrix(test["confusion"], run_dir / CONFUSION_PNG)
    calibration = config["model"].get("calibration")
    if calibration:
        plot_reliability(test_split["labels"], test["p_pg"], calibration["temperature"],
                         run_dir / RELIABILITY_PNG)
    (run_dir / TEST_REPORT_TXT).write_text(
        f"Test set: {len(test['p_pg'])} images, threshold P(PG) >= {DECISION_THRESHOLD} -> PG\n\n"
        f"{test['report']}")
    started = time.time()
    gallery = gallery_html(model, test_split["paths"], test_split["labels"], test["p_pg"],
                           test["ood_score"], image_size, resize)
    write_html_report(run_dir / REPORT_HTML, config, history, gallery, run_dir, leak_report)
    return round(time.time() - started, 2)
