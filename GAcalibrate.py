"""Fits the out-of-distribution statistics and the confidence calibration of a model that has none
(the original project's weights, or a model trained elsewhere), from images you trust.

    python GAcalibrate.py --weights georgia --images images/split/val          # CEX/ and PG/ inside
    python GAcalibrate.py --weights other/model.keras --images my_crops/        # any images: OOD only

IMAGES is either a folder with CEX/ and PG/ subfolders (labelled: both parts are fitted) or a
folder of crystal images (unlabelled: only the out-of-distribution statistics). The last
`holdout` share of each class (in file order, so copies of one crop mostly stay on one side)
is held out: it sets the out-of-distribution threshold, as the validation split does in training
(the same recipe, gacrystal.ood.fit_statistics), and measures the calibration. Writes, beside the
model: MODEL_STEM.ood.npz and MODEL_STEM.calibration.json, which GAinfer.py then uses.
For calibration, use labelled images the model was not trained on (a split's val/ or test/).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from gacrystal import calibration, ood
from gacrystal.classifier import load_classifier
from gacrystal.cli import parse_settings, run_main
from gacrystal.errors import UserError
from gacrystal.files import write_text_atomic
from gacrystal.images import CLASS_NAMES, class_subfolders, list_images, read_batches

# --- settings (edit here, or override on the command line with the same names) ---
weights = "weights/model.keras"  # the model: a file (.keras, .h5, .onnx) or georgia / georgia-onnx
images = "images/split/val"  # CEX/ and PG/ subfolders (labelled), or a folder of trusted crystal images
holdout = 0.2  # share of each class held out to set the OOD threshold and measure calibration
batch_size = 16  # images per forward pass
overwrite = False  # replace statistics or a calibration fitted earlier
trust_model = False  # allow a legacy .h5 model's Lambda layers (runs code from the file)
# --- end of settings


def check_settings(s: dict) -> tuple[list[Path], np.ndarray | None]:
    """Checks the settings; returns the image files and their labels (None when unlabelled)."""
    folder = Path(s["images"])
    if not folder.is_dir():
        raise UserError(f"no image folder at images={folder}; pass a folder with CEX/ and PG/ "
                        "(e.g. a split's val/) or a folder of crystal images you trust")
    if not 0 < s["holdout"] < 1:
        raise UserError(f"holdout must be between 0 and 1. Received: holdout={s['holdout']}")
    folders = class_subfolders(folder)
    if len(folders) == len(CLASS_NAMES):
        files = [list_images(folders[name]) for name in CLASS_NAMES]
        labels = np.concatenate([np.full(len(f), i) for i, f in enumerate(files)])
        files = sum(files, [])
    else:
        files, labels = list_images(folder, recursive=True), None
    if len(files) < 20:
        raise UserError(f"found {len(files)} images in {folder}; at least 20 are needed "
                        "(a few hundred give a steadier threshold)")
    return files, labels


def score_images(classifier, files: list[Path], batch_size: int, variation=None):
    """One pass: the raw P(PG) and the OOD features of every readable file; skips the others.
    `variation`: None, or a gacrystal.ood function that changes the batches first (the images
    turned, or under other imaging conditions)."""
    readable = []

    def batches():
        for indices, pixels, errors in read_batches([str(f) for f in files], batch_size,
                                                    classifier.image_size, classifier.resize,
                                                    progress=True):
            for i, error in zip(indices, errors):
                if error:
                    print(f"skipped {files[i]}: {error}")
            good = [i for i, p in zip(indices, pixels) if p is not None]
            if good:
                readable.extend(good)
                yield np.stack([p for p in pixels if p is not None])
    p_pg, features = [], []
    for batch in variation(batches()) if variation else batches():
        p, f = classifier.predict_with_features(batch)
        p_pg.append(p)
        features.append(f)
    return (np.concatenate(p_pg), None if features[0] is None else np.concatenate(features),
            readable)


def held_out(labels: np.ndarray, share: float) -> np.ndarray:
    """The last `share` of each class, in file order: True for held-out images."""
    mask = np.zeros(len(labels), bool)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        mask[members[len(members) - max(1, round(share * len(members))):]] = True
    return mask


def fit_ood(model_path: Path, features_of_files, features: np.ndarray, sizes: list[int],
            labels: np.ndarray, holdout_mask: np.ndarray) -> dict:
    """The statistics, with the recipe training uses: fitted on the images not held out, the
    threshold set on the held-out ones; saved as MODEL_STEM.ood.npz.

    Args:
        features_of_files: (rows, variation) -> the OOD features of those readable images under
            a gacrystal.ood variation (a pass of its own).
        features: the OOD features of every readable image as it is (the first pass's).
    """
    rows = np.arange(len(labels))

    def features_of(picked, variation):
        if variation:
            return features_of_files(picked, variation)
        return features[np.asarray(picked, int)]
    stages, summary = ood.fit_statistics(features_of, list(rows[~holdout_mask]),
                                         labels[~holdout_mask], list(rows[holdout_mask]), sizes)
    ood.save(stages, ood.sidecar_path(model_path))
    return summary


def main(argv=None):
    s, _ = parse_settings(__file__, "Fit OOD statistics and calibration for any model.", argv)
    files, labels = check_settings(s)
    classifier = load_classifier(s["weights"], s["trust_model"], features=True)
    model_path = classifier.path
    targets = [ood.sidecar_path(model_path), calibration.sidecar_path(model_path)]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not s["overwrite"]:
        verb = "exists" if len(existing) == 1 else "exist"
        raise UserError(f"{', '.join(existing)} already {verb}; pass --overwrite to replace them")
    trained_with = model_path.parent / ood.file_for(classifier.card)
    if trained_with.is_file():  # the statistics its training fitted: say what takes over
        print(f"note: {model_path.name} has the statistics its training fitted "
              f"({trained_with.name}); the files written here take their place when it is "
              f"loaded (delete them to go back)")
    p_raw, features, readable = score_images(classifier, files, s["batch_size"])
    labels = np.zeros(len(readable), int) if labels is None else labels[readable]
    holdout_mask = held_out(labels, s["holdout"])
    print(f"{len(readable)} images: {int((~holdout_mask).sum())} to fit, "
          f"{int(holdout_mask.sum())} held out")
    if features is None:
        print(f"{model_path.name} has no feature output (the original's .onnx file); the "
              "out-of-distribution check needs its .h5 twin (--weights georgia)")
    else:
        sizes = classifier.feature_sizes or [features.shape[1]]  # unknown: one stage

        def features_of_files(rows, variation):
            picked = [files[readable[row]] for row in rows]
            return score_images(classifier, picked, s["batch_size"], variation)[1]
        summary = fit_ood(model_path, features_of_files, features, sizes, labels, holdout_mask)
        print(f"wrote {ood.sidecar_path(model_path)}: fitted on {summary['fit_images']} images; "
              f"{100 * summary['val_pass_rate']:.1f}% of the held-out images pass, "
              f"{100 * summary['varied_val_pass_rate']:.1f}% under other imaging conditions")
    if len(np.unique(labels)) == len(CLASS_NAMES):
        record = calibration.fit_calibration(labels[~holdout_mask], p_raw[~holdout_mask],
                                             labels[holdout_mask], p_raw[holdout_mask],
                                             fitted_on=f"{int((~holdout_mask).sum())} images "
                                                       f"in {s['images']}")
        write_text_atomic(calibration.sidecar_path(model_path), json.dumps(record, indent=2))
        print(f"wrote {calibration.sidecar_path(model_path)}: temperature "
              f"{record['temperature']:.3f}; expected calibration error on the held-out images "
              f"{record['ece_before']:.4f} -> {record['ece_after']:.4f}")
        warning = calibration.temperature_warning(record["temperature"])
        if warning:
            print(warning)
    else:
        print("no calibration: it needs labelled images (CEX/ and PG/ subfolders)")
    print(f"next: python GAinfer.py --weights {s['weights']} --images FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main))
