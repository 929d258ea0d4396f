"""Frame times: where each frame's time comes from, chosen once per run and kept across restarts.

The sources, in the order "auto" tries them: a --times table (columns frame, time), the image's
own EXIF/TIFF time, the file's modification time; or, with "order", the frame's place in the
sequence times an interval. `wanted_source` is the one rule that turns the settings into the
source they ask for; `FrameClock` applies it frame by frame, and `state`/`restore` carry its
choice and the first frame's time across a restart (monitor.json, else the first row).
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from gacrystal.errors import UserError
from gacrystal.images import EXIF_DATETIME

TIME_SOURCES = ("auto", "times", "exif", "mtime", "order")
EXIF_IFD, EXIF_DATETIME_ORIGINAL = 0x8769, 36867  # where cameras put the time of capture


def wanted_source(time_source: str, times: str | Path | None, interval_typed: bool = False) -> str:
    """The time source the settings ask for: time_source, except that "auto" is "times" with a
    --times table, else "order" when an interval was typed (frames come every interval seconds);
    the "auto" left over is settled by the first frame (EXIF time, else file time)."""
    if time_source != "auto":
        return time_source
    if times:
        return "times"
    return "order" if interval_typed else "auto"


def exif_time(path: Path) -> dt.datetime | None:
    """The time the image's own metadata gives (EXIF DateTimeOriginal or the TIFF/EXIF DateTime
    tag), or None."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            text = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
        return dt.datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S") if text else None
    except (OSError, ValueError, SyntaxError):
        return None


def read_times(path: str | Path) -> dict[str, dt.datetime | float]:
    """A --times CSV: columns frame (the file name) and time (ISO 8601, e.g. 2026-03-01 14:32:05,
    or seconds since the start)."""
    table = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"frame", "time"} <= set(reader.fieldnames or ()):
            raise UserError(f"{path} needs the columns frame and time. Received: "
                            f"{', '.join(reader.fieldnames or ['nothing'])}")
        for row in reader:
            text = row["time"].strip()
            try:
                table[row["frame"].strip()] = float(text)
            except ValueError:
                try:
                    table[row["frame"].strip()] = dt.datetime.fromisoformat(text)
                except ValueError:
                    raise UserError(f"{path}: cannot read the time of {row['frame']!r} "
                                    f"({text!r}); write ISO 8601 or seconds") from None
    return table


class FrameClock:
    """Gives each frame its time, from one source for the whole run (the CSVs say which).

    Args:
        source: one of TIME_SOURCES, taken as `wanted_source` says: "auto" is "times" with
            times_path, else the EXIF time when the first frame has one, else the file's time.
        times_path: the --times table, for source "times" (read again when it changes, so a
            probe may append to it while it is watched).
        interval: seconds between frames, for source "order".

    A frame that lacks the chosen source (no EXIF time, no row in the table yet) gets its file's
    modification time, and its row says so.
    """

    def __init__(self, source: str = "auto", times_path: str | Path | None = None,
                 interval: float = 10.0):
        self.times_path = Path(times_path) if times_path else None
        self.source, self.interval = wanted_source(source, self.times_path), interval
        self.times, self.times_read = {}, None  # the table, and the file's mtime when read
        self.start: dt.datetime | None = None  # the first frame's time
        self.chosen: str | None = None  # the source "auto" settled on

    def state(self) -> dict:
        """What a restart needs (monitor.json keeps it): the source chosen, the first frame's time."""
        return {"time_source": self.chosen,
                "start": self.start.isoformat() if self.start else None}

    def restore(self, state: dict, first_source: str | None, first_time: dt.datetime | None):
        """Goes on with an earlier run's clock: its `state()`, else (a crash before that was
        saved) the source and time of the run's first frame."""
        self.chosen = state.get("time_source") or first_source
        start = state.get("start")
        self.start = dt.datetime.fromisoformat(start) if start else first_time

    def choose(self, path: Path) -> str:
        if self.source != "auto":
            return self.source
        return "exif" if exif_time(path) is not None else "mtime"

    def from_table(self, name: str) -> dt.datetime | float | None:
        if name not in self.times and self.times_path is not None:
            changed = self.times_path.stat().st_mtime_ns if self.times_path.exists() else None
            if changed != self.times_read:
                self.times, self.times_read = read_times(self.times_path), changed
        return self.times.get(name)

    def time_of(self, path: Path, index: int, mtime: float) -> tuple[dt.datetime | None, float, str]:
        """(time or None, seconds since the first frame, source used) of the index-th frame,
        whose file was modified at `mtime` (seconds since the epoch)."""
        self.chosen = self.chosen or self.choose(path)
        source, when = self.chosen, None
        if source == "order":
            return None, index * self.interval, source
        if source == "times":
            when = self.from_table(path.name)
            if isinstance(when, float):
                return None, when, source
        elif source == "exif":
            when = exif_time(path)
        if when is None:
            source, when = "mtime", dt.datetime.fromtimestamp(mtime)  # said so in its row
        self.start = self.start or when
        return when, (when - self.start).total_seconds(), source
