"""Writing files safely: whole or not at all, and one writer at a time.

- `atomic_path(final)` hands out a temporary name in the same folder; the file appears under its
  final name (one rename, atomic on POSIX and Windows) only after it was written completely. A crash
  mid-write leaves a hidden `.partial` file, never a truncated `model.keras` that looks complete.
- `exclusive_lock(target)` refuses a second process that wants to write the same destination
  while the first one still does. The operating system releases the lock when its holder dies,
  even by SIGKILL, so a crashed run never leaves a stale lock behind.
- `write_csv(rows, path, columns)` writes a whole table atomically; `append_csv` adds rows to one
  that grows a row at a time (the monitor's), complete lines flushed to disk. Both write cells by
  one rule (`csv_cells`: floats with 10 significant digits) and open files one way (`CSV_TEXT`:
  UTF-8, a name that is not valid UTF-8 kept as its own bytes), which readers use too.
- The names of the files beside a model (a run folder, weights/), spelled once: training writes
  them, the loaders, GAquantize.py, GAcalibrate.py and the cluster's workers read them.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from gacrystal.errors import UserError

# The files beside a model, in a run folder and in weights/ (docs/training.md lists a run's files).
MODEL_KERAS = "model.keras"  # the trained model
MODEL_H5 = "model.h5"  # the same model in Keras's legacy HDF5 format
MODEL_ONNX = "model.onnx"  # the scoring model for ONNX Runtime: P(PG) and the OOD features
MODEL_INT8_ONNX = "model.int8.onnx"  # its int8 copy (GAquantize.py, gacrystal.quantize.int8_path)
CONFIG_JSON = "config.json"  # the model card and the run that made it
OOD_NPZ = "ood.npz"  # the out-of-distribution statistics (gacrystal.ood)
OOD_INT8_NPZ = "ood.int8.npz"  # an int8 model's own statistics: its features differ
HISTORY_CSV = "history.csv"  # a run's row per epoch, by the CSV rule below (written and read back)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


@contextlib.contextmanager
def atomic_path(final: str | Path):
    """Yields a temporary path beside `final` (same suffix, so savers that check it are happy);
    renames it to `final` when the block ends without an exception, removes it otherwise."""
    final = Path(final)
    temporary = final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str):
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


CSV_TEXT = dict(encoding="utf-8", errors="surrogateescape", newline="")
# How every table of this project is opened, to write and to read back. surrogateescape: a file
# name that is not valid UTF-8 is written as its own bytes and reads back as the same name (a
# resumed run recognises the frame; a corrections.csv row names the file that exists).


def csv_cells(row: dict, columns: list[str]) -> dict:
    """One row's cells by the rule every table follows: None an empty cell, floats with 10
    significant digits (elapsed seconds to the millisecond over months of watching), anything
    else as the csv module writes it."""
    return {k: "" if row[k] is None else format(row[k], ".10g") if isinstance(row[k], float)
            else row[k] for k in columns}


def write_rows(f, rows: Iterable[dict], columns: list[str], header: bool, line_end: str):
    writer = csv.DictWriter(f, fieldnames=columns, lineterminator=line_end)
    if header:
        writer.writeheader()
    writer.writerows(csv_cells(row, columns) for row in rows)


def write_csv(rows: Iterable[dict], path: str | Path, columns: list[str], line_end: str = "\r\n"):
    """A CSV of the rows (a list, or a generator: memory stays flat), written atomically by the
    rule of `csv_cells` and `CSV_TEXT`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        with open(temporary, "w", **CSV_TEXT) as f:
            write_rows(f, rows, columns, header=True, line_end=line_end)


def append_csv(path: Path, rows: list[dict], columns: list[str]):
    """Appends the rows (and the header, to a new or empty file) as complete lines ending in
    "\\n", by the rule of write_csv, in one write flushed to disk: a crash leaves at most one
    partial last line."""
    buffer = io.StringIO()
    new = not path.exists() or path.stat().st_size == 0
    write_rows(buffer, rows, columns, header=new, line_end="\n")
    with open(path, "a", **CSV_TEXT) as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())


def csv_header(path: Path) -> list[str]:
    """The column names in a CSV's first line ([] for an empty file)."""
    with open(path, **CSV_TEXT) as f:
        return next(csv.reader(f), [])


def copy_atomic(source: str | Path, dest: str | Path):
    import shutil
    with atomic_path(dest) as temporary:
        shutil.copyfile(source, temporary)


def _try_lock(handle) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def lock_file_of(target: str | Path) -> Path:
    """The lock of a destination: a hidden file beside it (a folder may not exist yet)."""
    target = Path(target).resolve()
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def exclusive_lock(target: str | Path, what: str = "another process"):
    """Holds the lock of `target` for the block; raises UserError if another process holds it."""
    lock = lock_file_of(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "a+")
    if not _try_lock(handle):
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise UserError(f"{what} (process {holder}) is writing to {target} right now; wait for it "
                        "to finish or choose another destination")
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        handle.close()
