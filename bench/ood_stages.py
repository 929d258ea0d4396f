"""Which depths of the network the out-of-distribution check rejects with (run by hand).

    python bench/ood_stages.py --weights runs/RUN/model.keras --real ../shared/reference/real \
        --held_out images/split-synthetic/test

The check scores every image at six depths (the preprocessed input, the stem, stages 2-4, the last
stage) and rejects it where the largest scaled score passes 1 (gacrystal.ood). For the model's own
ood.npz, this prints per group of images the share that each depth alone would reject, and which
depth decides (holds the largest score): foreign photographs (scikit-image's, in colour and grey;
200 small faces), the tests' generated foreign kinds, real crops in their eight orientations, and
held-out synthetic crops. None of these images built the check.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

from foreign import KINDS, foreign_images  # noqa: E402
from photographs import faces, photographs  # noqa: E402

DEPTHS = ["input", "stem", "stage 2", "stage 3", "stage 4", "last stage"]


def features_of(classifier, images) -> np.ndarray:
    """The OOD features of each readable image, from the labelling pass itself."""
    collected = []
    classifier.label(images, on_batch=lambda indices, pixels, features: collected.append(features))
    return np.concatenate(collected)


def scaled_stage_scores(stages: list[dict], features: np.ndarray) -> np.ndarray:
    """(images, depths): each depth's score over its share of the threshold (above 1: rejected)."""
    from gacrystal import ood
    parts = ood.split_stages(features, ood.stage_sizes(stages))
    return np.stack([ood.stage_scores(stage, part) / float(stage["scale"])
                     for stage, part in zip(stages, parts)], axis=1)


def row(name: str, scores: np.ndarray) -> str:
    alone = " ".join(f"{np.mean(scores[:, d] > 1):>10.0%}" for d in range(scores.shape[1]))
    deciding = np.bincount(scores.argmax(axis=1), minlength=scores.shape[1])
    most = DEPTHS[int(deciding.argmax())]
    return (f"{name:28s} {len(scores):>5d} {np.mean(scores.max(axis=1) > 1):>8.0%} {alone}   "
            f"{most} ({deciding.max()} of {len(scores)})")


def main():
    from gacrystal.classifier import load_classifier
    from gacrystal.images import dihedral, list_images, read_rgb
    from gacrystal.synthetic import realism
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "model.keras"))
    parser.add_argument("--real", default="",
                        help="a folder of real crops (Kaggle names, or cex/ and pg/), e.g. "
                        "the project's reference crops ../shared/reference/real; empty: none")
    parser.add_argument("--held_out", default=str(ROOT / "images" / "split-synthetic" / "test"))
    args = parser.parse_args()
    print(f"machine: {machine()}\nmodel: {args.weights}")
    classifier = load_classifier(args.weights)
    if not classifier.can_reject:
        sys.exit("this model has no OOD statistics (ood.npz); fit them with GAcalibrate.py")
    stages = classifier.ood_stages
    photos = photographs()
    groups = {
        "photographs, colour": [v for k, v in photos.items() if not k.endswith("(grey)")],
        "photographs, grey": [v for k, v in photos.items() if k.endswith("(grey)")],
        "small faces": faces(),
    }
    generated = foreign_images(20, classifier.image_size, seed=1)
    groups.update({f"generated: {kind}": list(generated[kind]) for kind in KINDS})
    if args.real:
        real = [p for paths in realism.real_crops(args.real, "real").values() for p in paths]
        groups["real crops, 8 orientations"] = [dihedral(read_rgb(p), k) for p in real
                                                for k in range(8)]
    else:
        print("real crops: none (--real FOLDER adds them)")
    groups["held-out synthetic crops"] = [str(p) for p in list_images(args.held_out,
                                                                      recursive=True)]
    print(f"\n{'':28s} {'n':>5s} {'rejected':>8s} "
          + " ".join(f"{d:>10s}" for d in DEPTHS) + "   deciding depth (most often)")
    print(f"{'':43s}" + "each depth alone would reject:")
    for name, images in groups.items():
        print(row(name, scaled_stage_scores(stages, features_of(classifier, images))))


if __name__ == "__main__":
    main()
