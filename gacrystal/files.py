"""Writing files safely: whole or not at all, and one writer at a time.

- `atomic_path(final)` hands out a temporary name in the same folder; the file appears under its
  final name (one rename, atomic on POSIX and Windows) only after it was written completely. A crash
  mid-write leaves a hidden `.partial` file, never a truncated `model.keras` that looks complete.
- `exclusive_lock(target)` refuses a second process that wants to write the same destination
  while the first one still does. The operating system releases the lock when its holder dies,
  even by SIGKILL, so a crashed run never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gacrystal.errors import UserError

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


def write_csv(rows: list[dict], path: str | Path, columns: list[str]):
    """A CSV of the rows, written atomically: floats with 6 decimals, None as an empty cell.
    File names that are not valid UTF-8 are written backslash-escaped."""
    import csv
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row[k] is None else
                                     f"{row[k]:.6f}" if isinstance(row[k], float) else row[k])
                                 for k in columns})


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
