"""Copies the class images into train/val/test folders: 70/25/5 per class, without leaks.

    python GAsplit.py --source images/kaggle --dest images/split
    python GAsplit.py --source images/synthetic --dest images/split --shuffle --seed 7
    python GAsplit.py --source images/kaggle --dest images/split-original --no-group
    python GAsplit.py --check images/split        # report copies that cross splits

SOURCE may be the folder the Kaggle zip was extracted to, its archive/cropped/cropped, or any folder
holding cex/ and pg/ (any case). DEST receives train/, val/ and test/, each with CEX/ and PG/,
manifest.csv (split, class, source, dest, size, sha256, group) and leak_report.txt. Files are
copied, never moved, renamed or deleted. Files that are not readable images are left out and listed
in skipped.csv.

Copies of one crop (rotated, mirrored, re-encoded; see gacrystal/dataset/copies.py) go to one split
together, so no validation or test image has a copy in training. --no-group splits file by file,
as the original did (and reports the leak that leaves). The steps live in
gacrystal.dataset.splitting.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gacrystal.cli import parse_settings, run_main
from gacrystal.dataset.splitting import check_existing_split, describe, overlaps, split_dataset
from gacrystal.errors import UserError
from gacrystal.files import exclusive_lock
from gacrystal.images import find_class_folders, list_images

# --- settings (edit here, or override on the command line with the same names) ---
source = "images/kaggle"  # the extracted Kaggle download, or any folder holding cex/ and pg/
dest = "images/split"  # where train/, val/ and test/ (each with CEX/ and PG/) are written
train_fraction = 0.70  # share of each class for training (original: 0.70)
val_fraction = 0.25  # share of each class for validation; test gets the rest (original: 0.25)
shuffle = False  # shuffle each class before splitting (original: natural file-number order)
seed = 42  # random seed for --shuffle
group = True  # keep copies of one crop (rotated, mirrored, re-encoded) in one split (original: no)
overwrite = False  # replace an earlier split in DEST (removes only its train/ val/ test/ manifest)
check = ""  # instead of splitting: report copies that cross the splits of this existing split folder
# --- end of settings

GET_DATA_HELP = (
    "Download the Kaggle dataset 'OpenCrystalData - Cephalexin reactive crystallization' "
    "(kaggle.com/datasets/opencrystaldata/cephalexin-reactive-crystallization) and extract it "
    "into {source}, or make a synthetic stand-in with `python GAsynth.py` and split it with "
    "`python GAsplit.py --source images/synthetic`")


def check_settings(s: dict):
    """Checks the settings before anything is written."""
    if not (0 < s["train_fraction"] < 1 and 0 <= s["val_fraction"] < 1
            and s["train_fraction"] + s["val_fraction"] <= 1):
        raise UserError("need 0 < train_fraction < 1, 0 <= val_fraction and their sum <= 1. "
                        f"Received: train_fraction={s['train_fraction']}, "
                        f"val_fraction={s['val_fraction']}")
    source, dest = Path(s["source"]), Path(s["dest"])
    if not source.exists():
        raise UserError(f"no data at source={source}. " + GET_DATA_HELP.format(source=source))
    class_folders = find_class_folders(source)
    if class_folders is None:
        raise UserError(f"found no cex/ and pg/ folders in {source} or in "
                        f"{source}/archive/cropped/cropped. " + GET_DATA_HELP.format(source=source))
    for name, folder in class_folders.items():
        if not list_images(folder):
            raise UserError(f"the {name} folder {folder} holds no images")
    # A destination inside the source (or the reverse) would have a later split or scan of the
    # source walk into the copies.
    if overlaps(dest, source):
        raise UserError(f"dest={dest} and source={source} overlap (one is inside the other); "
                        "choose a dest outside the source folder")
    if dest.exists() and any(dest.iterdir()) and not s["overwrite"]:
        raise UserError(f"dest={dest} is not empty; choose an empty or new folder, or pass "
                        "--overwrite to replace an earlier split there")


def main(argv=None):
    s, _ = parse_settings(__file__, "Split the CEX/PG images into train/val/test folders.", argv)
    if s["check"]:
        report, leaked = check_existing_split(Path(s["check"]))
        print(report, end="")
        return 1 if leaked else 0
    with exclusive_lock(s["dest"], "another split"):
        check_settings(s)
        result = split_dataset(s["source"], s["dest"], s["group"], s["train_fraction"],
                               s["val_fraction"], s["shuffle"], s["seed"], s["overwrite"])
    print(describe(result))
    print(next_command(s["source"], s["dest"]))


def next_command(source: str, dest: str) -> str:
    """Crops GAmonitor.py --export_crops wrote (crops.csv beside them) are corrections of a model:
    the next step fine-tunes that model rather than training a new one."""
    from gacrystal.monitoring.corrections import CROPS_CSV
    if (Path(source) / CROPS_CSV).is_file():
        return (f"next: python GAmain.py --data {dest} --init_weights MODEL   (MODEL: the model "
                f"that monitored these frames, e.g. weights/model.keras)")
    return f"next: python GAmain.py --data {dest}"


if __name__ == "__main__":
    sys.exit(run_main(main))
