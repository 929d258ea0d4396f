"""Writes synthetic in-situ microscope images laid out exactly like the Kaggle dataset.

    python GAsynth.py                          # the settings below
    python GAsynth.py --cex_count 6860 --pg_count 6804 --out images/synthetic-full
    python GAsynth.py --compare ../shared/reference/real   # how close they come to real crops

Output: OUT/archive/cropped/cropped/cex/CEX (n).png and OUT/archive/cropped/cropped/pg/PG (n).png,
8-bit grey images stored as RGB, as in the real download (see README, "Synthetic data").

How each trait of the real images is imitated, and what the real ones look like, is written in
gacrystal/synthetic.py (the drawing) and ../shared/reference/DATASET.md. The same seed gives the
same files whatever the counts.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gacrystal.cli import parse_settings, run_main
from gacrystal.errors import UserError
from gacrystal.images import KAGGLE_SUBPATH
from gacrystal.synthetic import generate_dataset, remove_previous

# --- settings (edit here, or override on the command line with the same names) ---
out = "images/synthetic"  # folder to write; images go to OUT/archive/cropped/cropped/{cex,pg}
cex_count = 600  # number of CEX images (the real dataset has 6860)
pg_count = 600  # number of PG images, rotated copies included (the real dataset has 6804)
cex_size = 151  # side of the square CEX crops in pixels (real: 151)
pg_size_min = 130  # smallest side of a PG crop in pixels (real: about 130)
pg_size_max = 230  # largest side of a PG crop in pixels (real: about 230)
seed = 42  # random seed; the same seed gives the same images
overwrite = False  # write into an OUT that already holds images
# realism check (writes no images)
compare = None  # a folder of real crops: print how close synthetic crops come to them
compare_count = 60  # synthetic crops per class drawn for --compare
compare_sheet = "realism.png"  # --compare writes real and synthetic crops side by side here
weights = "weights/model.keras"  # --compare also labels the real crops with this model, if present
# --- end of settings


def check_settings(s):
    for name in ("cex_count", "pg_count"):
        if s[name] < 0:
            raise UserError(f"{name} must be 0 or more. Received: {name}={s[name]}")
    if not 16 <= s["pg_size_min"] <= s["pg_size_max"]:
        raise UserError("need 16 <= pg_size_min <= pg_size_max. Received: "
                        f"pg_size_min={s['pg_size_min']}, pg_size_max={s['pg_size_max']}")
    if s["cex_size"] < 16:
        raise UserError(f"cex_size must be at least 16. Received: cex_size={s['cex_size']}")
    target = Path(s["out"], KAGGLE_SUBPATH)
    if target.exists() and any(target.rglob("*.png")) and not s["overwrite"]:
        raise UserError(f"{target} already holds images; choose another --out, or pass "
                        "--overwrite to write over them")


def compare_with_real(folder, count, seed, sheet, weights, cex_size, pg_size_range):
    """--compare: the realism figures (gacrystal.realism), a side-by-side sheet, and how a
    model trained on synthetic crops labels the real ones."""
    from gacrystal import realism
    if count < 1:
        raise UserError(f"compare_count must be at least 1. Received: compare_count={count}")
    real = realism.real_crops(folder)
    synthetic = realism.synthetic_sample(count, seed, cex_size, pg_size_range)
    print(realism.format_rows(realism.compare(real, synthetic)))
    realism.write_sheet(real, synthetic, sheet)
    print(f"wrote {sheet}: real crops above synthetic ones, per class")
    if not Path(weights).is_file():
        print(f"no model at {weights}: train one with `python GAmain.py --demo` to see how a "
              "synthetic-trained model labels the real crops")
        return
    print(f"\nthe real crops under {weights}:")
    from gacrystal.labelling import format_table
    records = realism.label_real(weights, real)
    print(format_table(records))
    right = sum(r["label"] == r["true"] for r in records)
    print(f"{right} of {len(records)} labelled right; "
          f"{sum(r['label'] == 'UNKNOWN' for r in records)} rejected as unlike the training images")


def main(argv=None):
    s, _ = parse_settings(__file__, "Write synthetic CEX/PG crystal images in the Kaggle layout.",
                          argv)
    if s["compare"]:
        return compare_with_real(s["compare"], s["compare_count"], s["seed"], s["compare_sheet"],
                                 s["weights"], s["cex_size"], (s["pg_size_min"], s["pg_size_max"]))
    check_settings(s)
    if s["overwrite"]:
        remove_previous(s["out"])
    written = generate_dataset(s["out"], s["cex_count"], s["pg_count"], s["cex_size"],
                               (s["pg_size_min"], s["pg_size_max"]), s["seed"])
    root = Path(s["out"], KAGGLE_SUBPATH)
    print(f"wrote {len(written['CEX'])} CEX and {len(written['PG'])} PG images to {root}")
    print(f"next: python GAsplit.py --source {s['out']} --dest images/split")


if __name__ == "__main__":
    sys.exit(run_main(main))
