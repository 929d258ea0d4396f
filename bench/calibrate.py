"""Calibration and after-the-fact OOD statistics, measured on a trained run (the demo's by default).

    python bench/calibrate.py                         # the newest demo run in runs/
    python bench/calibrate.py --run runs/RUN --split images/split-synthetic

Prints (a) the calibration that training fitted: temperature and the test split's expected
calibration error before and after; (b) the out-of-distribution check two ways: the statistics
training fitted (ood.npz) and statistics fitted after the fact by GAcalibrate.py on the split's
val/ folder for a copy of the model that had none: share of generated foreign images rejected
(120: scenes, text, gradients, checkerboards, noise, flat colours) and share of the split's test
images that pass; (c) for information only, with --real FOLDER, the same for those real crops
(the project's reference crops are 7 files: far too few to tune anything to).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine

sys.path.insert(0, str(ROOT / "tests"))


def shares(classifier, foreign: dict, crystals: list) -> tuple[float, float]:
    from gacrystal.images import UNKNOWN
    rejected = [r["label"] == UNKNOWN for kind in foreign.values()
                for r in classifier.label(kind)]
    passed = [r["label"] != UNKNOWN for r in classifier.label(crystals)]
    return sum(rejected) / len(rejected), sum(passed) / len(passed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="", help="run folder (default: the newest demo run)")
    parser.add_argument("--split", default="images/split-synthetic")
    parser.add_argument("--real", default="", help="a folder of real crops' PNG files, e.g. the "
                        "project's reference crops ../shared/reference/real; empty: none")
    args = parser.parse_args()
    import GAcalibrate
    from foreign import foreign_images
    from gacrystal import load_classifier
    run = Path(args.run) if args.run else max(Path(ROOT, "runs").glob("*_demo"),
                                               key=lambda p: p.stat().st_mtime)
    config = json.loads((run / "config.json").read_text())
    split = Path(args.split)
    size = config["model"]["image_size"]
    print(f"machine: {machine()}\nrun: {run} ({config['model']['backbone']}, {size} px)")
    record = config["model"]["calibration"]
    print(f"(a) calibration from training: T = {record['temperature']:.3f} fitted on "
          f"{record['fitted_on']}; test ECE {record['ece_before']:.4f} -> {record['ece_after']:.4f}")
    foreign = foreign_images(20, size, seed=1)
    test_images = [str(p) for p in sorted((split / "test").rglob("*.png"))]
    real = sorted(Path(args.real).glob("*.png")) if args.real else []
    if not real:
        print("real crops: none (--real FOLDER adds them)")
    with tempfile.TemporaryDirectory() as work:
        bare = Path(work, "model.keras")
        shutil.copyfile(run / "model.keras", bare)  # no ood.npz, no config.json beside it
        GAcalibrate.main(["--weights", str(bare), "--images", str(split / "val")])
        for name, path in (("training's ood.npz", run / "model.keras"),
                           ("fitted after the fact on val/", bare)):
            classifier = load_classifier(path)
            rejected, passed = shares(classifier, foreign, test_images)
            line = (f"(b) {name:<30} foreign rejected {100 * rejected:5.1f}% of 120, "
                    f"test images passing {100 * passed:5.1f}% of {len(test_images)}")
            if real:
                records = classifier.label([str(p) for p in real])
                line += ("; real crops passing "
                         f"{sum(r['label'] != 'UNKNOWN' for r in records)}/{len(real)}")
            print(line)


if __name__ == "__main__":
    main()
