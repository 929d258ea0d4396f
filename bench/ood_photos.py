"""The out-of-distribution check on real photographs it was not built with, and on real crops
(issue 23; run by hand).

    python bench/ood_photos.py                                  # weights/model.keras, no real crops
    python bench/ood_photos.py --weights runs/RUN/model.keras --real ../shared/reference/real

Prints, for the model's own ood.npz: each photograph of scikit-image (tests/photographs.py: 18
photographs and micrographs, the colour ones in colour and in grey) with its label and ood_score;
the share rejected in colour, in grey, of the 200 small face photographs (skimage's lfw_subset),
and of the generated foreign kinds of the tests (tests/foreign.py); and the real crops' labels,
ood_scores and pass rate, also over each crop's eight rotations and mirrors. None of these images
built the check.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))

from foreign import KINDS, foreign_images  # noqa: E402
from photographs import faces, photographs  # noqa: E402


def rejected(records) -> float:
    return float(np.mean([r["label"] == "UNKNOWN" for r in records]))


def main():
    from gacrystal.classifier import load_classifier
    from gacrystal.images import dihedral, read_rgb
    from gacrystal.synthetic import realism
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "model.keras"))
    parser.add_argument("--real", default="",
                        help="a folder of real crops (Kaggle names, or cex/ and pg/), e.g. "
                        "the project's reference crops ../shared/reference/real; empty: none")
    args = parser.parse_args()
    print(f"machine: {machine()}\nmodel: {args.weights}")
    classifier = load_classifier(args.weights)
    photos = photographs()
    records = dict(zip(photos, classifier.label(list(photos.values()))))
    for name, r in records.items():
        print(f"  {name:28s} {r['label']:8s} P(PG) {r['p_pg']:.3f}  ood_score {r['ood_score']:.2f}")
    grey = [r for name, r in records.items() if name.endswith("(grey)")]
    colour = [r for name, r in records.items() if not name.endswith("(grey)")]
    print(f"photographs rejected: colour {rejected(colour):.0%} of {len(colour)}, grey "
          f"{rejected(grey):.0%} of {len(grey)}; faces {rejected(classifier.label(faces())):.0%} "
          "of 200")
    generated = foreign_images(20, classifier.image_size, seed=1)
    rates = {kind: rejected(classifier.label(generated[kind])) for kind in KINDS}
    print("generated foreign kinds rejected: "
          + ", ".join(f"{kind} {rate:.0%}" for kind, rate in rates.items()))
    if not args.real:
        print("real crops: none (--real FOLDER adds them)")
        return
    real = realism.real_crops(args.real, "real")
    paths = [p for name in real for p in real[name]]
    truth = [name for name in real for _ in real[name]]
    real_records = classifier.label([str(p) for p in paths])
    for path, true, r in zip(paths, truth, real_records):
        print(f"  {path.name:16s} {true:4s} -> {r['label']:8s} P(PG) {r['p_pg']:.3f}  "
              f"ood_score {r['ood_score']:.2f}")
    passed = 1 - rejected(real_records)
    right = np.mean([r["label"] == t for r, t in zip(real_records, truth)])
    print(f"real crops: {passed:.0%} pass the check, {right:.0%} labelled right ({len(paths)})")
    # A crystal has no preferred orientation: each crop in its eight rotations and mirrors.
    turned = classifier.label([dihedral(read_rgb(p), k) for p in paths for k in range(8)])
    views = [t for t in truth for _ in range(8)]
    print(f"real crops in all 8 orientations: {1 - rejected(turned):.0%} pass, "
          f"{np.mean([r['label'] == t for r, t in zip(turned, views)]):.0%} labelled right "
          f"({len(turned)}); largest ood_score {max(r['ood_score'] for r in turned):.2f}")


if __name__ == "__main__":
    main()
