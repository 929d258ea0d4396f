"""The out-of-distribution threshold with and without the imaging-variety calibration (issue 15).

    python bench/ood_variety.py --weights weights/model.keras --data images/split-synthetic

Fits the model's statistics twice with gacrystal.ood's recipe: once calibrated on validation
images and held-out training folds only (the recipe before issue 15), once with the validation
images under `imaging_variety` as well (the recipe now). Prints the ood_score of the real
reference crops and the share of generated foreign images (tests/foreign.py) rejected, for both.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from foreign import KINDS, foreign_images  # noqa: E402

from gacrystal import ood  # noqa: E402

from gacrystal.classifier import load_classifier  # noqa: E402
from gacrystal.images import read_stack  # noqa: E402
from gacrystal.synthetic import realism  # noqa: E402
from gacrystal.training.data import list_split  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="weights/model.keras")
    parser.add_argument("--data", default="images/split-synthetic")
    parser.add_argument("--real", default="",
                        help="a folder of real crops (Kaggle names, or cex/ and pg/), e.g. "
                        "the project's reference crops ../shared/reference/real; empty: none")
    args = parser.parse_args()
    classifier = load_classifier(args.weights, features=True)
    size, resize = classifier.image_size, classifier.resize

    def features_of(paths, variation):
        batches = read_stack(list(paths), size, resize)
        pixels = np.concatenate(list(variation(batches) if variation else batches))
        return classifier.predict_with_features(pixels)[1]

    train_paths, train_labels = list_split(Path(args.data, "train"))
    val_paths, _ = list_split(Path(args.data, "val"))
    real = realism.real_crops(args.real) if args.real else {}
    if not real:
        print("real crops: none (--real FOLDER adds them)")
    real_paths = [p for name in real for p in real[name]]
    real_features = features_of([str(p) for p in real_paths], False) if real_paths else None
    foreign = foreign_images(20, size, seed=1)
    foreign_features = {kind: classifier.predict_with_features(
        np.stack([np.asarray(i.convert("RGB").resize((size, size)), np.float32)
                  for i in foreign[kind]]))[1] for kind in KINDS}

    def without_variety(paths, variation):  # the varied pass repeats the plain one: no widening
        return features_of(paths, None if variation is ood.varied_batches else variation)

    for name, source in (("without imaging variety", without_variety),
                         ("with imaging variety", features_of)):
        stages, summary = ood.fit_statistics(source, train_paths, train_labels, val_paths,
                                             ood.stage_sizes(classifier.ood_stages))
        scores = ood.scores(stages, real_features) if real_paths else []
        print(f"\n{name}: {100 * summary['val_pass_rate']:.1f}% of validation images pass")
        for path, score in zip(real_paths, scores):
            print(f"  {path.name:16} ood_score {score:5.2f}  {'UNKNOWN' if score > 1 else 'passes'}")
        for kind in KINDS:
            rejected = np.mean(ood.scores(stages, foreign_features[kind]) > 1)
            print(f"  foreign {kind:12} {100 * rejected:5.1f}% rejected")


if __name__ == "__main__":
    main()
