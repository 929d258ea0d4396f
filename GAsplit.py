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

Copies of one crop (rotated, mirrored, re-encoded; see GAgroups.py) go to one split together, so
no validation or test image has a copy in training. --no-group splits file by file, as the original
did (and reports the leak that leaves).
"""
from __future__ import annotations

import hashlib
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from GAcli import UserError, parse_settings, run_main
from GAfiles import exclusive_lock, write_csv, write_text_atomic
from GAgroups import Signature, find_groups, leak_summary, signature
from GAimages import (CLASS_NAMES, ImageError, class_subfolders, find_class_folders, list_images,
                      read_rgb, why_unreadable)

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

SPLITS = ("train", "val", "test")
OUTPUTS = SPLITS + ("manifest.csv", "skipped.csv", "leak_report.txt")  # all a split writes
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
    signature: Signature | None = None  # thumbnails for finding copies (GAgroups)
    group: int = -1  # index of its group of copies within its class


def split_counts(n: int, train_fraction=0.70, val_fraction=0.25) -> tuple[int, int, int]:
    """Files per split for a class of n files, rounded down as the original did.

    6,860 CEX files give (4802, 1715, 343) and 6,804 PG files give (4762, 1701, 341).
    Exact fractions keep float error out: 0.7 * 6860 is 4801.999... in floating point.
    """
    n_train = int(Fraction(str(train_fraction)) * n)
    n_val = int(Fraction(str(val_fraction)) * n)
    return n_train, n_val, n - n_train - n_val


def partition_groups(groups: list[list], train_fraction=0.70, val_fraction=0.25, shuffle=False,
                     seed=42) -> dict[str, list]:
    """Splits one class's groups of items, whole, into {"train": [...], "val": ..., "test": ...}.

    Groups are taken in the order given (or shuffled); each goes to the split in which its middle
    item falls on the file-by-file split's boundaries, so each split is within half a group of its
    target at each boundary. Groups of one item give exactly the file-by-file split.
    """
    groups = list(groups)
    if shuffle:
        random.Random(seed).shuffle(groups)
    n_train, n_val, _ = split_counts(sum(len(g) for g in groups), train_fraction, val_fraction)
    parts = {split: [] for split in SPLITS}
    position = 0
    for group in groups:
        middle = position + len(group) / 2
        split = "train" if middle <= n_train else "val" if middle <= n_train + n_val else "test"
        parts[split].extend(group)
        position += len(group)
    return parts


def partition(items: list, train_fraction=0.70, val_fraction=0.25, shuffle=False, seed=42):
    """Splits one class's items file by file, as the original did (see partition_groups)."""
    return partition_groups([[item] for item in items], train_fraction, val_fraction, shuffle, seed)


def scan_file(path: Path, class_name: str) -> Scanned:
    """Reads a file once: size, SHA-256, a full decode (to prove it is a readable image) and the
    thumbnails that find its copies."""
    record = Scanned(path, class_name)
    try:
        data = path.read_bytes()
        record.size, record.sha256 = len(data), hashlib.sha256(data).hexdigest()
        record.signature = signature(read_rgb(data))
    except (ImageError, OSError) as error:  # OSError: permissions, a symlink loop, ...
        record.error = why_unreadable(error)
    return record


def scan_files(jobs: list[tuple[Path, str]]) -> list[Scanned]:
    """Scans (path, class) jobs in parallel (decoding and hashing release the GIL)."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    # One BLAS thread per scanning thread: the thumbnails' small matrix products would otherwise
    # each start BLAS threads of their own and oversubscribe the cores (3x slower on two).
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=4) as pool:
        records = list(tqdm(pool.map(lambda job: scan_file(*job), jobs), total=len(jobs),
                            desc="reading", unit="img", disable=len(jobs) < 500,
                            mininterval=0.1 if sys.stderr.isatty() else 5.0))
    return records


def scan_classes(class_folders: dict[str, Path]) -> list[Scanned]:
    """Scans every image of every class folder."""
    return scan_files([(path, name) for name, folder in class_folders.items()
                       for path in list_images(folder)])


def group_copies(records: list[Scanned]) -> list[list[Scanned]]:
    """Groups one class's readable records into copies of one crop; sets each record's group."""
    groups = find_groups([r.signature for r in records])
    for number, members in enumerate(groups):
        for i in members:
            records[i].group = number
    return [[records[i] for i in members] for members in groups]


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
                             "dest": str(target), "size": record.size, "sha256": record.sha256,
                             "group": record.group})
    return rows


def print_counts(assignment):
    """Images per split and class, with each class's achieved percentages."""
    totals = {name: sum(len(assignment[split][name]) for split in SPLITS) for name in CLASS_NAMES}
    print(f"{'split':<6}" + "".join(f"{name:>14}" for name in CLASS_NAMES) + f"{'total':>8}")
    for split, by_class in assignment.items():
        counts = [len(by_class[name]) for name in CLASS_NAMES]
        cells = "".join(f"{c:>7} ({100 * c / max(totals[n], 1):4.1f}%)"
                        for c, n in zip(counts, CLASS_NAMES))
        print(f"{split:<6}{cells}{sum(counts):>8}")


def leak_report(by_class: dict[str, list[Scanned]], split_of: dict[Path, str]) -> tuple[str, bool]:
    """A text report of copies that cross splits, per class; and whether any does."""
    lines = ["Copies of one crop (rotated, mirrored, re-encoded) found in more than one split.",
             "", f"{'class':<6}{'images':>8}{'groups':>8}{'crossing':>10}"
             f"{'val with a copy in train':>28}{'test with a copy in train':>28}"]
    crossing_lines, leaked = [], False
    for name, records in by_class.items():
        members: dict[int, list[int]] = {}
        for i, r in enumerate(records):
            members.setdefault(r.group, []).append(i)
        groups = list(members.values())
        summary = leak_summary([split_of[r.path] for r in records], groups)
        leaked = leaked or bool(summary["crossing"])
        cells = [f"{summary[f'{s}_leaked']} / {summary[s]} ({100 * summary[f'{s}_leak']:.1f}%)"
                 for s in ("val", "test")]
        lines.append(f"{name:<6}{len(records):>8}{len(groups):>8}{len(summary['crossing']):>10}"
                     f"{cells[0]:>28}{cells[1]:>28}")
        for group in summary["crossing"]:
            members = ", ".join(f"{split_of[records[i].path]}: {records[i].path.name}" for i in group)
            crossing_lines.append(f"  {name}: {members}")
    if crossing_lines:
        lines += ["", "Groups that cross splits:"] + crossing_lines
    else:
        lines += ["", "No group crosses splits: no validation or test image has a copy in train."]
    return "\n".join(lines) + "\n", leaked


def check_existing_split(dest: Path) -> int:
    """--check: groups the images of an existing split folder and reports copies across splits."""
    jobs = [(path, name) for split in SPLITS
            for name, folder in class_subfolders(dest / split).items()
            for path in list_images(folder)]
    if not jobs:
        raise UserError(f"no split folder at check={dest}: expected {dest}/train/CEX/ and so on")
    records = scan_files(jobs)
    split_of = {r.path: r.path.parent.parent.name for r in records}
    by_class = {name: [r for r in records if r.class_name == name and not r.error]
                for name in CLASS_NAMES}
    for records_of_class in by_class.values():
        group_copies(records_of_class)
    text, leaked = leak_report(by_class, split_of)
    print(text, end="")
    return 1 if leaked else 0


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


def split_into(s: dict, class_folders: dict[str, Path]):
    """Scans, groups, partitions and copies; writes the manifest and the reports."""
    dest = Path(s["dest"])
    started = time.perf_counter()
    records = scan_classes(class_folders)
    scanned = time.perf_counter()
    skipped = [r for r in records if r.error]
    assignment = {split: {} for split in SPLITS}
    by_class = {}
    for name in CLASS_NAMES:
        usable = [r for r in records if r.class_name == name and not r.error]
        groups = group_copies(usable)
        units = groups if s["group"] else [[r] for r in usable]
        parts = partition_groups(units, s["train_fraction"], s["val_fraction"], s["shuffle"],
                                 s["seed"])
        for split in SPLITS:
            assignment[split][name] = parts[split]
        by_class[name] = usable
    grouped = time.perf_counter()
    if s["overwrite"]:
        remove_previous_split(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rows = copy_split(assignment, dest)
    write_csv(rows, dest / "manifest.csv",
              ["split", "class", "source", "dest", "size", "sha256", "group"])
    split_of = {r.path: split for split, parts in assignment.items()
                for members in parts.values() for r in members}
    report, leaked = leak_report(by_class, split_of)
    write_text_atomic(dest / "leak_report.txt", report)
    print_counts(assignment)
    print(f"copied {len(rows)} images to {dest}; manifest: {dest / 'manifest.csv'}")
    print(f"read and checked in {scanned - started:.1f} s, grouped in {grouped - scanned:.1f} s, "
          f"copied in {time.perf_counter() - grouped:.1f} s")
    groups = {name: len({r.group for r in recs}) for name, recs in by_class.items()}
    print("copies of one crop: " + ", ".join(
        f"{name} {len(recs)} images in {groups[name]} groups" for name, recs in by_class.items())
        + ("; whole groups kept in one split" if s["group"] else "; split file by file (--no-group)"))
    if leaked:
        print("LEAK: " + report.splitlines()[0].lower() + " See " + str(dest / "leak_report.txt"))
        print("\n".join(report.splitlines()[2:5]))
    if skipped:
        write_csv([{"class": r.class_name, "source": str(r.path), "error": r.error}
                   for r in skipped], dest / "skipped.csv", ["class", "source", "error"])
        print(f"left out {len(skipped)} unreadable files (listed in {dest / 'skipped.csv'}):")
        for r in skipped[:10]:
            print(f"  {r.path}: {r.error}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more")
    print(f"next: python GAmain.py --data {dest}")


def main(argv=None):
    s, _ = parse_settings(__file__, "Split the CEX/PG images into train/val/test folders.", argv)
    if s["check"]:
        return check_existing_split(Path(s["check"]))
    with exclusive_lock(s["dest"], "another split"):
        return split_into(s, check_settings(s))


if __name__ == "__main__":
    sys.exit(run_main(main))
