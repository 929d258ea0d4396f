"""The monitor's tables in the output folder, which grow a row at a time: frames.csv,
particles.csv, sizes.csv and unreadable.csv; reading them back on a restart (cutting the partial last line
a crash may leave), and refusing a table written with other columns (an older version).

Rows are appended by gacrystal.files.append_csv, the rule every table of this project follows.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from gacrystal.errors import UserError
from gacrystal.files import CSV_TEXT, append_csv, csv_header, write_csv

from gacrystal.monitoring.outputs import (FRAMES_CSV, PARTICLES_CSV, SIZES_CSV,  # noqa: F401
                                          UNREADABLE_CSV)
UNREADABLE_COLUMNS = ["frame", "reason", "size", "mtime_ns"]


def check_columns(path: Path, columns: list[str]):
    """Refuses a table to go on with whose header is not `columns` (written by another version):
    rows appended to it would not be under their own column names."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    header = csv_header(path)
    if header != columns:
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        differs = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"extra {', '.join(extra)}" if extra else "") if part) or "in another order"
        raise UserError(f"{path} was written by another version, with other columns ({differs}); "
                        "pass --overwrite to start the run again, or choose another --out")


def cut_partial_line(path: Path):
    """Truncates the file after its last complete line (a crash mid-append leaves less than one
    append's worth of text after it)."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        tail_start = max(size - 2**20, 0)
        f.seek(tail_start)
        tail = f.read()
        if tail and not tail.endswith(b"\n"):
            f.truncate(tail_start + tail.rfind(b"\n") + 1)


def iter_rows(path: Path):
    """The complete rows of a table written by append_csv, one at a time (memory flat in its
    length)."""
    if not path.exists():
        return
    cut_partial_line(path)
    with open(path, **CSV_TEXT) as f:
        yield from csv.DictReader(f)


def keep_rows(path: Path, keep, columns: list[str]):
    """Rewrites a table with only the rows for which keep(row) is true, atomically."""
    write_csv((row for row in iter_rows(path) if keep(row)), path, columns, line_end="\n")


def file_signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None when it is gone: unreadable.csv's key,
    so that a frame given up on is tried again once its file has changed."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def read_unreadable(path: Path) -> dict[str, tuple[str, tuple[int, int]]]:
    """unreadable.csv: {frame: (why, (size, mtime_ns) of its file when given up on)}."""
    return {r["frame"]: (r["reason"], (int(r["size"] or -1), int(r["mtime_ns"] or -1)))
            for r in iter_rows(path)}


def append_unreadable(path: Path, frame: str, reason: str, signature: tuple[int, int]):
    append_csv(path, [{"frame": frame, "reason": reason, "size": signature[0],
                       "mtime_ns": signature[1]}], UNREADABLE_COLUMNS)
