"""Copies the class images into train/val/test folders: 70/25/5 per class, as the original did.

    python GAsplit.py --source images/kaggle --dest images/split
    python GAsplit.py --source images/synthetic --dest images/split --shuffle --seed 7

SOURCE may be the folder the Kaggle zip was extracted to, its archive/cropped/cropped, or any folder
holding cex/ and pg/ (any case). DEST receives train/, val/ and test/, each with CEX/ and PG/, and
manifest.csv (split, class, source, dest, size, sha256). Files are copied, never moved, renamed or
deleted. Files that are not readable images are left out and listed in skipped.csv.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from GAcli import UserError, parse_settings, run_main
from GAimages import CLASS_NAMES, find_class_folders, list_images, read_rgb

# --- settings (edit here, or override on the command line with the same names) ---
source = "images/kaggle"  # the extracted Kaggle download, or any folder holding cex/ and pg/
dest = "images/split"  # where train/, val/ and test/ (each with CEX/ and PG/) are written
train_fraction = 0.70  # share of each class for training (original: 0.70)
val_fraction = 0.25  # share of each class for validation; test gets the rest (original: 0.25)
shuffle = False  # shuffle each class before splitting (original: natural file-number order)
seed = 42  # random seed for --shuffle
overwrite = False  # replace an earlier split in DEST (removes only its train/ val/ test/ manifest)
# --- end of settings

SPLITS = ("train", "val", "test")
OUTPUTS = SPLITS + ("manifest.csv", "skipped.csv")  # everything a split writes into DEST
GET_DATA_HELP = (
    "Download the Kaggle dataset 'OpenCrystalData - Cephalexin reactive crystallization' "
    "(kaggle.com/datasets/opencrystaldata/cephalexin-reactive-crystallization) and extract it "
    "into {source}, or make a synthetic stand-in with `python GAsynth.py` and split it with "
    "`python GAsplit.py --source images/synthetic`")


@dataclass
class Scanned:
    """One source file after reading it: its class, size, hash, or why it is unusable."""
    path: Path
    class_name: str
    size: int = 0
    sha256: str = ""
    error: str = ""


def split_counts(n: int, train_fraction=0.70, val_fraction=0.25) -> tuple[int, int, int]:
    """Files per split for a class of n files, rounded down as the original did.

    6,860 CEX files give (4802, 1715, 343) and 6,804 PG files give (4762, 1701, 341).
    Exact fractions keep float error out: 0.7 * 6860 is 4801.999... in floating point.
    """
    n_train = int(Fraction(str(train_fraction)) * n)
    n_val = int(Fraction(str(val_fraction)) * n)
    return n_train, n_val, n - n_train - n_val


def partition(items: list, train_fraction=0.70, val_fraction=0.25, shuffle=False, seed=42):
    """Splits one class's items, in the order given, into {"train": [...], "val": ..., "test": ...}."""
    items = list(items)
    if shuffle:
        random.Random(seed).shuffle(items)
    n_train, n_val, _ = split_counts(len(items), train_fraction, val_fraction)
    return {"train": items[:n_train], "val": items[n_train:n_train + n_val],
            "test": items[n_train + n_val:]}


def scan_file(path: Path, class_name: str) -> Scanned:
    """Reads a file once: size, SHA-256, and a full decode to prove it is a readable image."""
    record = Scanned(path, class_name)
    try:
        data = path.read_bytes()
        record.size, record.sha256 = len(data), hashlib.sha256(data).hexdigest()
        read_rgb(io.BytesIO(data))
    except Exception as error:  # any decoder failure means "not a usable image"; we say which
        record.error = f"{type(error).__name__}: {error}"
    return record


def scan_classes(class_folders: dict[str, Path]) -> list[Scanned]:
    """Scans every image of every class, in parallel (decoding and hashing release the GIL)."""
    from tqdm import tqdm

    jobs = [(path, name) for name, folder in class_folders.items() for path in list_images(folder)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        records = list(tqdm(pool.map(lambda job: scan_file(*job), jobs), total=len(jobs),
                            desc="reading", unit="img", disable=len(jobs) < 500,
                            mininterval=0.1 if sys.stderr.isatty() else 5.0))
    return records


def copy_split(assignment: dict[str, dict[str, list[Scanned]]], dest: Path) -> list[dict]:
    """Copies each file to dest/split/class/ under its own name; returns the manifest rows."""
    rows = []
    for split, by_class in assignment.items():
        for class_name, records in by_class.items():
            folder = dest / split / class_name
            folder.mkdir(parents=True, exist_ok=True)
            for record in records:
                target = folder / record.path.name
                shutil.copyfile(record.path, target)
                rows.append({"split": split, "class": class_name, "source": str(record.path),
                             "dest": str(target), "size": record.size, "sha256": record.sha256})
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str]):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def print_counts(assignment):
    print(f"{'split':<6}" + "".join(f"{name:>8}" for name in CLASS_NAMES) + f"{'total':>8}")
    for split, by_class in assignment.items():
        counts = [len(by_class[name]) for name in CLASS_NAMES]
        print(f"{split:<6}" + "".join(f"{c:>8}" for c in counts) + f"{sum(counts):>8}")


def overlaps(dest: Path, class_folder: Path) -> bool:
    """True when writing the split into dest would write into, or replace, a source folder."""
    dest, class_folder = dest.resolve(), class_folder.resolve()
    return (dest.is_relative_to(class_folder)
            or any(class_folder.is_relative_to(dest / name) for name in SPLITS))


def check_settings(s) -> dict[str, Path]:
    """Checks the settings before anything is written; returns the class folders."""
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
        if overlaps(dest, folder):
            raise UserError(f"dest={dest} overlaps the source folder {folder}; choose another dest")
    if dest.exists() and any(dest.iterdir()) and not s["overwrite"]:
        raise UserError(f"dest={dest} is not empty; choose an empty or new folder, or pass "
                        "--overwrite to replace an earlier split there")
    return class_folders


def remove_previous_split(dest: Path):
    """With --overwrite: removes what an earlier split wrote, and nothing else."""
    for name in OUTPUTS:
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def main(argv=None):
    s, _ = parse_settings(__file__, "Split the CEX/PG images into train/val/test folders.", argv)
    class_folders = check_settings(s)
    dest = Path(s["dest"])
    records = scan_classes(class_folders)
    skipped = [r for r in records if r.error]
    assignment = {split: {} for split in SPLITS}
    for name in CLASS_NAMES:
        usable = [r for r in records if r.class_name == name and not r.error]
        parts = partition(usable, s["train_fraction"], s["val_fraction"], s["shuffle"], s["seed"])
        for split in SPLITS:
            assignment[split][name] = parts[split]
    if s["overwrite"]:
        remove_previous_split(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rows = copy_split(assignment, dest)
    write_csv(dest / "manifest.csv", rows, ["split", "class", "source", "dest", "size", "sha256"])
    print_counts(assignment)
    print(f"copied {len(rows)} images to {dest}; manifest: {dest / 'manifest.csv'}")
    if skipped:
        write_csv(dest / "skipped.csv",
                  [{"class": r.class_name, "source": str(r.path), "error": r.error} for r in skipped],
                  ["class", "source", "error"])
        print(f"left out {len(skipped)} unreadable files (listed in {dest / 'skipped.csv'}):")
        for r in skipped[:10]:
            print(f"  {r.path}: {r.error}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more")
    print(f"next: python GAmain.py --data {dest}")


if __name__ == "__main__":
    sys.exit(run_main(main))
