"""Splitting the class images into train/val/test folders, 70/25/5 per class, without leaks.

    records = scan_classes(find_class_folders("images/kaggle"))
    assignment, groups = plan_split(records)             # whole groups of copies per split
    rows, report, leaked = write_split(assignment, groups, skipped=[], dest=Path("images/split"))

Copies of one crop (rotated, mirrored, re-encoded; see gacrystal.dataset.copies) go to one split
together, so no validation or test image has a copy in training. Files are copied, never moved,
renamed or deleted.
"""
from __future__ import annotations

import hashlib
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from gacrystal.cli import progress_bar
from gacrystal.dataset.copies import Signature, find_groups, leak_summary, signature
from gacrystal.dataset.split_folder import SPLIT_NAMES
from gacrystal.errors import UserError
from gacrystal.files import write_csv, write_text_atomic
from gacrystal.images import (CLASS_NAMES, KAGGLE_SUBPATH, SYNTHETIC_STAMP, ImageError,
                              class_subfolders, find_class_folders, list_images, read_rgb,
                              why_unreadable)

SPLITS = SPLIT_NAMES
# all a split writes
OUTPUTS = SPLITS + ("manifest.csv", "skipped.csv", "leak_report.txt", SYNTHETIC_STAMP)


@dataclass
class Scanned:
    """One source file after reading it: its class, size, hash, or why it is unusable."""
    path: Path
    class_name: str
    size: int = 0
    sha256: str = ""
    error: str = ""
    signature: Signature | None = None  # thumbnails for finding copies (gacrystal.dataset.copies)


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

    # One BLAS thread per scanning thread: the thumbnails' small matrix products would otherwise
    # each start BLAS threads of their own and oversubscribe the cores (3x slower on two).
    bar = progress_bar(len(jobs), "reading", enabled=len(jobs) >= 500)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=4) as pool:
        records = []
        for record in pool.map(lambda job: scan_file(*job), jobs):
            records.append(record)
            bar.update()
    bar.close()
    return records


def scan_classes(class_folders: dict[str, Path]) -> list[Scanned]:
    """Scans every image of every class folder."""
    return scan_files([(path, name) for name, folder in class_folders.items()
                       for path in list_images(folder)])


def group_copies(records: list[Scanned]) -> list[list[Scanned]]:
    """Groups one class's readable records into copies of one crop, in file order."""
    return [[records[i] for i in members] for members in find_groups([r.signature for r in records])]


def group_numbers(groups: list[list[Scanned]]) -> dict[Path, int]:
    """Each file's group number within its class (the manifest's `group` column)."""
    return {record.path: number for number, members in enumerate(groups) for record in members}


def copy_split(assignment: dict[str, dict[str, list[Scanned]]], dest: Path,
               group_of: dict[Path, int]) -> list[dict]:
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
                             "group": group_of[record.path]})
    return rows


def leak_report(groups_by_class: dict[str, list[list[Scanned]]],
                split_of: dict[Path, str]) -> tuple[str, bool]:
    """A text report of copies that cross splits, per class; and whether any does."""
    lines = [f"{'class':<6}{'images':>8}{'groups':>8}{'crossing':>10}"
             f"{'val with a copy in train':>28}{'test with a copy in train':>28}"]
    crossing_lines, leaked = [], False
    for name, groups in groups_by_class.items():
        records = [r for members in groups for r in members]
        index_groups, start = [], 0
        for members in groups:
            index_groups.append(list(range(start, start + len(members))))
            start += len(members)
        summary = leak_summary([split_of[r.path] for r in records], index_groups)
        leaked = leaked or bool(summary["crossing"])
        cells = [f"{summary[f'{s}_leaked']} / {summary[s]} ({100 * summary[f'{s}_leak']:.1f}%)"
                 for s in ("val", "test")]
        lines.append(f"{name:<6}{len(records):>8}{len(groups):>8}{len(summary['crossing']):>10}"
                     f"{cells[0]:>28}{cells[1]:>28}")
        for group in summary["crossing"]:
            members = ", ".join(f"{split_of[records[i].path]}: {records[i].path.name}" for i in group)
            crossing_lines.append(f"  {name}: {members}")
    copies = "Copies of one crop (rotated, mirrored, re-encoded)"
    if crossing_lines:
        lines = [f"{copies} found in more than one split.", "", *lines,
                 "", "Groups that cross splits:", *crossing_lines]
    else:
        lines = [f"{copies}: none in more than one split.", "", *lines,
                 "", "No group crosses splits: no validation or test image has a copy in train."]
    return "\n".join(lines) + "\n", leaked


def plan_split(records: list[Scanned], group: bool = True, train_fraction=0.70,
               val_fraction=0.25, shuffle=False, seed=42):
    """Decides each readable file's split, class by class: whole groups of copies (or, without
    `group`, single files) partitioned 70/25/5.

    Returns:
        (assignment {split: {class: [records]}}, groups {class: [[records]]}).
    """
    assignment = {split: {} for split in SPLITS}
    groups_by_class = {}
    for name in CLASS_NAMES:
        usable = [r for r in records if r.class_name == name and not r.error]
        groups = group_copies(usable)
        units = groups if group else [[r] for r in usable]  # file by file, in file order
        parts = partition_groups(units, train_fraction, val_fraction, shuffle, seed)
        for split in SPLITS:
            assignment[split][name] = parts[split]
        groups_by_class[name] = groups
    return assignment, groups_by_class


def write_split(assignment, groups_by_class, skipped: list[Scanned], dest: Path,
                overwrite: bool = False) -> tuple[list[dict], str, bool]:
    """Copies the files and writes manifest.csv, leak_report.txt and (if any) skipped.csv.

    Returns:
        (manifest rows, the leak report's text, whether any group crosses splits).
    """
    if overwrite:
        remove_previous_split(dest)
    dest.mkdir(parents=True, exist_ok=True)
    group_of = {}
    for groups in groups_by_class.values():
        group_of.update(group_numbers(groups))
    rows = copy_split(assignment, dest, group_of)
    write_csv(rows, dest / "manifest.csv",
              ["split", "class", "source", "dest", "size", "sha256", "group"])
    split_of = {r.path: split for split, parts in assignment.items()
                for members in parts.values() for r in members}
    report, leaked = leak_report(groups_by_class, split_of)
    write_text_atomic(dest / "leak_report.txt", report)
    if skipped:
        write_csv([{"class": r.class_name, "source": str(r.path), "error": r.error}
                   for r in skipped], dest / "skipped.csv", ["class", "source", "error"])
    return rows, report, leaked


def remove_previous_split(dest: Path):
    """With --overwrite: removes what an earlier split wrote, and nothing else."""
    for name in OUTPUTS:
        path = dest / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_existing_split(dest: Path) -> tuple[str, bool]:
    """Groups the images of an existing split folder; returns the leak report and whether any
    group crosses splits."""
    jobs = [(path, name) for split in SPLITS
            for name, folder in class_subfolders(dest / split).items()
            for path in list_images(folder)]
    if not jobs:
        raise UserError(f"no split folder at check={dest}: expected {dest}/train/CEX/ and so on")
    records = scan_files(jobs)
    split_of = {r.path: r.path.parent.parent.name for r in records}
    groups_by_class = {name: group_copies([r for r in records
                                           if r.class_name == name and not r.error])
                       for name in CLASS_NAMES}
    return leak_report(groups_by_class, split_of)


def overlaps(a: Path, b: Path) -> bool:
    """True when one folder is inside the other (or they are the same)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a.is_relative_to(b) or b.is_relative_to(a)


@dataclass
class SplitResult:
    """What split_dataset did: the assignment, the groups, the manifest rows and the leak report."""
    dest: Path
    assignment: dict
    groups_by_class: dict
    rows: list
    report: str
    leaked: bool
    skipped: list
    group: bool
    seconds: dict  # reading, grouping, copying


def split_dataset(source: str | Path, dest: str | Path, group: bool = True, train_fraction=0.70,
                  val_fraction=0.25, shuffle=False, seed=42, overwrite=False) -> SplitResult:
    """Scans the class folders found in source, plans the split and writes it into dest."""
    dest = Path(dest)
    class_folders = find_class_folders(source)
    if class_folders is None:
        raise UserError(f"found no cex/ and pg/ folders in {source} or in {source}/{KAGGLE_SUBPATH}")
    started = time.perf_counter()
    records = scan_classes(class_folders)
    scanned = time.perf_counter()
    assignment, groups_by_class = plan_split(records, group, train_fraction, val_fraction,
                                             shuffle, seed)
    grouped = time.perf_counter()
    skipped = [r for r in records if r.error]
    rows, report, leaked = write_split(assignment, groups_by_class, skipped, dest, overwrite)
    if Path(source, SYNTHETIC_STAMP).is_file():  # the split of synthetic images says so
        shutil.copyfile(Path(source, SYNTHETIC_STAMP), dest / SYNTHETIC_STAMP)
    seconds = {"reading": scanned - started, "grouping": grouped - scanned,
               "copying": time.perf_counter() - grouped}
    return SplitResult(dest, assignment, groups_by_class, rows, report, leaked, skipped, group,
                       seconds)


def count_table(assignment) -> str:
    """Images per split and class, with each class's achieved percentages."""
    totals = {name: sum(len(assignment[split][name]) for split in SPLITS) for name in CLASS_NAMES}
    lines = [f"{'split':<6}" + "".join(f"{name:>14}" for name in CLASS_NAMES) + f"{'total':>8}"]
    for split, by_class in assignment.items():
        counts = [len(by_class[name]) for name in CLASS_NAMES]
        cells = "".join(f"{c:>7} ({100 * c / max(totals[n], 1):4.1f}%)"
                        for c, n in zip(counts, CLASS_NAMES))
        lines.append(f"{split:<6}{cells}{sum(counts):>8}")
    return "\n".join(lines)


def missing_classes(assignment) -> list[str]:
    """A warning for each split that holds images but none of one class: training needs both
    classes in train and val (it stops with an error), and a test without one grades nothing."""
    warnings = []
    for split, by_class in assignment.items():
        empty = [name for name in CLASS_NAMES if not by_class[name]]
        if empty and len(empty) < len(CLASS_NAMES):
            warnings.append(
                f"WARNING: {split}/ holds no {' or '.join(empty)} images: too few images of that "
                "class for the fractions (whole groups of copies move together). Add images, or "
                "change --train_fraction / --val_fraction, before training on this split.")
    return warnings


def describe(result: SplitResult) -> str:
    """What a split did, for the terminal: counts, timings, groups, leaks, skipped files."""
    dest, s = result.dest, result.seconds
    lines = [count_table(result.assignment),
             f"copied {len(result.rows)} images to {dest}; manifest: {dest / 'manifest.csv'}",
             f"read and checked in {s['reading']:.1f} s, grouped in {s['grouping']:.1f} s, "
             f"copied in {s['copying']:.1f} s",
             "copies of one crop: " + ", ".join(
                 f"{name} {sum(map(len, groups))} images in {len(groups)} groups"
                 for name, groups in result.groups_by_class.items())
             + ("; whole groups kept in one split" if result.group
                else "; split file by file (--no-group)")]
    lines += missing_classes(result.assignment)
    if result.leaked:
        report = result.report.splitlines()
        lines += [f"LEAK: {report[0].lower()} See {dest / 'leak_report.txt'}", *report[2:5]]
    if result.skipped:
        lines.append(f"left out {len(result.skipped)} unreadable files (listed in "
                     f"{dest / 'skipped.csv'}):")
        lines += [f"  {r.path}: {r.error}" for r in result.skipped[:10]]
        if len(result.skipped) > 10:
            lines.append(f"  ... and {len(result.skipped) - 10} more")
    return "\n".join(lines)
