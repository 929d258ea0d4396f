"""Watching a crystallization for PG in whole probe frames (GAmonitor.py): per-particle and
per-frame results, the onset alarm, and resuming where a run stopped.

    monitor = Monitor(classifier, Path("monitor"), clock=FrameClock("auto"), alarm=OnsetAlarm())
    monitor.resume()                   # frames already in monitor/frames.csv are not done again
    monitor.process([Path("frame (1).png"), ...])

Each frame: candidates (gacrystal.candidates), each classified by the crop classifier with its
out-of-distribution check, counted by the rules below, one row per candidate appended to
particles.csv and one per frame to frames.csv (frames.csv last: a frame is done once its row is
there). What is counted:
- a blob labelled PG or UNKNOWN counts once; a blob that is out of focus counts as UNKNOWN
  without being classified; a blob labelled CEX is a bright part of the needle field, which
  its tiles already count, so it is listed but not counted;
- a tile counts unless it overlaps a counted blob (by TILE_OVERLAP of its area or more).
PG fraction = PG / (CEX + PG) over the counted regions, with its 95% Wilson score interval
(right for proportions near 0 and for few regions, where the normal approximation is not).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np

from gacrystal.candidates import Candidate, cut, find_candidates
from gacrystal.errors import UserError
from gacrystal.files import CSV_TEXT, write_csv
from gacrystal.files import append_csv as append_rows
from gacrystal.monitor_report import ReviewPicks
from gacrystal.images import (CLASS_NAMES, EXIF_DATETIME, UNKNOWN, ImageError, read_rgb,
                              why_unreadable)

PG, CEX = CLASS_NAMES[1], CLASS_NAMES[0]
TILE_OVERLAP = 0.1  # a tile sharing this much of its area with a counted blob is not counted
ALARM_EXIT_STATUS = 3  # GAmonitor.py's exit status when the alarm has fired
STATE_FILE = "monitor.json"
FRAMES_CSV, PARTICLES_CSV, UNREADABLE_CSV = "frames.csv", "particles.csv", "unreadable.csv"
OVERLAYS = "overlays"
PARTICLE_COLUMNS = ["frame", "time", "elapsed_s", "particle", "found_by", "x", "y", "w", "h",
                    "area_px", "diameter_px", "area_um2", "diameter_um", "sharpness", "label",
                    "p_pg", "confidence", "ood_score", "counted", "note"]
FRAME_COLUMNS = ["frame", "time", "elapsed_s", "time_source", "candidates", "cex", "pg",
                 "unknown", "pg_fraction", "pg_fraction_low", "pg_fraction_high",
                 "pg_area_fraction", "cusum", "alarm", "event"]
UNREADABLE_COLUMNS = ["frame", "reason", "size", "mtime_ns"]
TIME_SOURCES = ("auto", "times", "exif", "mtime", "order")
EXIF_IFD, EXIF_DATETIME_ORIGINAL = 0x8769, 36867  # where cameras put the time of capture


# ---- time -------------------------------------------------------------------------------------

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
    """Gives each frame its time, from one source for the whole run (the CSVs say which):
    a --times table, the image's EXIF/TIFF DateTime, the file's modification time, or its place
    in the sequence times `interval`. "auto" takes the first of these that the first frame has.
    A frame that lacks the chosen source (no EXIF time, no row in the table yet) gets its file's
    modification time, and its row says so; the table is read again when it changes, so a probe
    may append to it while it is watched."""

    def __init__(self, source: str = "auto", times_path: str | Path | None = None,
                 interval: float = 10.0, start: str | None = None, chosen: str | None = None):
        self.source, self.interval = source, interval
        self.times_path = Path(times_path) if times_path else None
        self.times, self.times_read = {}, None  # the table, and the file's mtime when read
        self.start = dt.datetime.fromisoformat(start) if start else None  # the first frame's time
        self.chosen = chosen  # the source "auto" settled on (kept in monitor.json for a restart)

    def choose(self, path: Path) -> str:
        if self.source != "auto":
            return self.source
        if self.times_path:
            return "times"
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


# ---- the alarm --------------------------------------------------------------------------------

class OnsetAlarm:
    """"PG has appeared": a one-sided CUSUM on the per-frame PG count, each frame's say capped.

    The first `baseline_frames` frames give the count's baseline mean and spread (their spread,
    at least 1 count: the model's own false PG rate, whatever it is, becomes the baseline). After
    them, each frame adds (count - mean) / spread - allowance, capped at `most_per_frame` -
    allowance, to a sum that never falls below 0; the alarm fires when the sum passes `threshold`.
    The cap (a robust CUSUM) is what keeps one frame full of false PG from firing it alone: with
    the defaults, no fewer than three frames well above the baseline can fire it (not necessarily
    in a row: a quiet frame only takes `allowance` off), and a lasting rise fires it on its third
    frame. This assumes the run starts before PG appears:
    started later, the baseline already holds PG and the alarm waits for a further rise.
    """

    def __init__(self, baseline_frames: int = 10, allowance: float = 0.75, threshold: float = 4.0,
                 most_per_frame: float = 2.5):
        self.baseline_frames, self.allowance, self.threshold = baseline_frames, allowance, threshold
        self.most_per_frame = most_per_frame
        self.baseline: list[int] = []
        self.cusum = 0.0
        self.fired_at: int | None = None  # the index of the frame where it fired
        self.frames_seen = 0

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    def update(self, pg_count: int) -> bool:
        """Takes one frame's PG count; True on the frame where the alarm fires."""
        index, self.frames_seen = self.frames_seen, self.frames_seen + 1
        if len(self.baseline) < self.baseline_frames:
            self.baseline.append(pg_count)
            return False
        mean = float(np.mean(self.baseline))
        spread = max(float(np.std(self.baseline)), 1.0)
        rise = min((pg_count - mean) / spread, self.most_per_frame)
        self.cusum = max(0.0, self.cusum + rise - self.allowance)
        if self.cusum > self.threshold and not self.fired:
            self.fired_at = index
            return True
        return False


def wilson_interval(successes: int, total: int) -> tuple[float | None, float | None]:
    """The 95% Wilson score interval of a proportion; (None, None) for no trials."""
    if total == 0:
        return None, None
    from scipy.stats import binomtest
    interval = binomtest(successes, total).proportion_ci(0.95, method="wilson")
    return float(interval.low), float(interval.high)


# ---- CSV files that grow a row at a time ------------------------------------------------------

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
    """The complete rows of a CSV written by append_csv, one at a time (memory flat in its
    length)."""
    if not path.exists():
        return
    cut_partial_line(path)
    with open(path, **CSV_TEXT) as f:
        yield from csv.DictReader(f)


def read_rows(path: Path) -> list[dict]:
    return list(iter_rows(path))


def keep_rows(path: Path, keep, columns: list[str]):
    """Rewrites a CSV with only the rows for which keep(row) is true, atomically."""
    write_csv((row for row in iter_rows(path) if keep(row)), path, columns, line_end="\n")


# ---- one frame --------------------------------------------------------------------------------

def count_regions(candidates: list[Candidate], labels: list[str]) -> list[tuple[bool, str]]:
    """(counted, note) of each candidate by the module's rules."""
    counted_blobs = [c for c, label in zip(candidates, labels)
                     if c.kind == "blob" and label != CEX]
    verdicts = []
    for candidate, label in zip(candidates, labels):
        if candidate.kind == "blob":
            verdicts.append((label != CEX, "" if label != CEX else
                             "part of the needle field (its tiles count)"))
            continue
        covered = max((candidate.overlap(b) for b in counted_blobs), default=0)
        if covered >= TILE_OVERLAP * candidate.w * candidate.h:
            verdicts.append((False, "overlaps a counted blob"))
        else:
            verdicts.append((True, ""))
    return verdicts


def particle_rows(frame: dict, candidates, records, um_per_px: float) -> list[dict]:
    """particles.csv rows of one frame, with counted and note set by count_regions."""
    labels = [r["label"] for r in records]
    rows = []
    for number, (c, r, (counted, note)) in enumerate(
            zip(candidates, records, count_regions(candidates, labels)), start=1):
        rows.append({
            "frame": frame["frame"], "time": frame["time"], "elapsed_s": frame["elapsed_s"],
            "particle": number, "found_by": c.kind, "x": c.x, "y": c.y, "w": c.w, "h": c.h,
            "area_px": c.area_px, "diameter_px": c.diameter_px,
            "area_um2": c.area_px * um_per_px ** 2 if um_per_px else None,
            "diameter_um": c.diameter_px * um_per_px if um_per_px and c.diameter_px else None,
            "sharpness": c.sharpness, "label": r["label"], "p_pg": r["p_pg"],
            "confidence": r["confidence"], "ood_score": r["ood_score"], "counted": int(counted),
            "note": note or r.get("note", "")})
    return rows


def frame_summary(particles: list[dict], frame_area: int) -> dict:
    """The counts, PG fraction with its Wilson interval and PG area fraction of one frame."""
    counted = [p for p in particles if p["counted"]]
    counts = {name: sum(p["label"] == name for p in counted) for name in (CEX, PG, UNKNOWN)}
    classified = counts[CEX] + counts[PG]
    low, high = wilson_interval(counts[PG], classified)
    pg_area = sum(p["area_px"] for p in counted if p["label"] == PG)
    return {"candidates": len(particles), "cex": counts[CEX], "pg": counts[PG],
            "unknown": counts[UNKNOWN],
            "pg_fraction": counts[PG] / classified if classified else None,
            "pg_fraction_low": low, "pg_fraction_high": high,
            "pg_area_fraction": pg_area / frame_area}


# ---- the monitor ------------------------------------------------------------------------------

class Monitor:
    """Classifies frames into an output folder and keeps the alarm; see the module's docstring.

    Args:
        classifier: a gacrystal.classifier.Classifier.
        out: the output folder (frames.csv, particles.csv, unreadable.csv, overlays/).
        tile_size: the side of the tiles over the needle field, in px.
        min_area: the smallest blob, in px.
        um_per_px: the probe's scale; 0 leaves the µm columns empty.
        overlay_every: an overlay PNG of the first frame and every overlay_every-th after it (and
            of the frame where the alarm fires); 0: none.
    """

    def __init__(self, classifier, out: Path, clock: FrameClock, alarm: OnsetAlarm,
                 tile_size: int = 151, min_area: float = 3000, um_per_px: float = 0.0,
                 batch_size: int = 32, threshold: float = 0.5, reject: bool = True,
                 overlay_every: int = 10, on_alarm=None):
        self.classifier, self.out, self.clock, self.alarm = classifier, Path(out), clock, alarm
        self.tile_size, self.min_area, self.um_per_px = tile_size, min_area, um_per_px
        self.batch_size, self.threshold, self.reject = batch_size, threshold, reject
        self.overlay_every = overlay_every
        self.on_alarm = on_alarm or (lambda row: None)
        self.frames: list[dict] = []  # frames.csv's rows, this run's and earlier runs'
        # {frame: (why, (size, mtime_ns))}: given up on while the file stays as it was
        self.unreadable: dict[str, tuple[str, tuple[int, int]]] = {}
        self.picks = ReviewPicks()  # the PG detections the page shows for review
        self.told_empty = False
        self.seconds = {"read": 0.0, "find": 0.0, "classify": 0.0, "write": 0.0}  # this run's
        self.out.mkdir(parents=True, exist_ok=True)

    @property
    def done(self) -> set[str]:
        return {row["frame"] for row in self.frames}

    def resume(self):
        """Takes up an earlier run in the same folder: its frames are done; particle rows of a
        frame whose frames.csv row was never written (a crash in between) are dropped; the alarm
        is replayed from the counts; the clock goes on from the first frame's time and source."""
        self.frames = read_rows(self.out / FRAMES_CSV)
        done = self.done
        particles_path = self.out / PARTICLES_CSV
        orphans = False
        for row in iter_rows(particles_path):  # streamed: this file is the long one
            if row["frame"] in done:
                self.picks.add(row)
            else:
                orphans = True
        if orphans:
            keep_rows(particles_path, lambda row: row["frame"] in done, PARTICLE_COLUMNS)
        for row in self.frames:
            self.alarm.update(int(row["pg"]))
        if self.frames:
            first = self.frames[0]
            self.clock.chosen = self.clock.chosen or first["time_source"]
            if self.clock.start is None and first["time"]:
                self.clock.start = dt.datetime.fromisoformat(first["time"])
        self.unreadable = {r["frame"]: (r["reason"], (int(r["size"] or -1), int(r["mtime_ns"] or -1)))
                           for r in read_rows(self.out / UNREADABLE_CSV)}

    def still_unreadable(self) -> list[str]:
        """The frames given up on and not done since."""
        done = self.done
        return [name for name in self.unreadable if name not in done]

    def report_unreadable(self, path: Path, reason: str):
        """Gives up on a frame while its file stays as it is (a later change, such as the rest of
        a half-written file arriving, makes it new again)."""
        import sys
        print(f"{path.name}: cannot be read ({reason}); not counted", file=sys.stderr)
        signature = file_signature(path) or (-1, -1)
        self.unreadable[path.name] = (reason, signature)
        append_rows(self.out / UNREADABLE_CSV, [{"frame": path.name, "reason": reason,
                                                 "size": signature[0], "mtime_ns": signature[1]}],
                    UNREADABLE_COLUMNS)

    def process(self, paths: list[Path], report_errors: bool = True) -> dict[Path, str]:
        """Reads, classifies (all candidates of all these frames in shared batches) and records
        the frames in order. Returns {frame: why} of those that could not be read; with
        report_errors they are also reported (on stderr and in unreadable.csv)."""
        from PIL import Image
        readable, failed = [], {}
        clock = time.perf_counter()
        for path in paths:
            try:
                # its time stamp now: the file may be gone by the time the frame is recorded
                readable.append((path, path.stat().st_mtime, read_rgb(path)))
            except (ImageError, OSError) as error:
                failed[path] = why_unreadable(error)
                if report_errors:
                    self.report_unreadable(path, failed[path])
        clock = self.lap("read", clock)
        found = [find_candidates(rgb, self.tile_size, self.min_area) for *_, rgb in readable]
        clock = self.lap("find", clock)
        crops = [Image.fromarray(cut(rgb, c)) for (*_, rgb), cs in zip(readable, found)
                 for c in cs if c.in_focus]
        records = iter(self.classifier.label(crops, self.batch_size, self.threshold,
                                             reject=self.reject) if crops else [])
        clock = self.lap("classify", clock)
        for (path, mtime, rgb), candidates in zip(readable, found):
            frame_records = [next(records) if c.in_focus else
                             {"label": UNKNOWN, "p_pg": None, "confidence": None,
                              "ood_score": None, "note": "out of focus"} for c in candidates]
            self.record_frame(path, mtime, rgb, candidates, frame_records)
        self.lap("write", clock)
        return failed

    def lap(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    def time_shares(self) -> str:
        total = sum(self.seconds.values()) or 1.0
        return ", ".join(f"{step} {100 * t / total:.0f}%" for step, t in self.seconds.items())

    def record_frame(self, path: Path, mtime: float, rgb, candidates, records):
        when, elapsed, source = self.clock.time_of(path, len(self.frames), mtime)
        if not candidates and not self.told_empty:
            import sys
            self.told_empty = True
            print(f"note: {path.name} gave no regions to classify (a flat or very dark frame? "
                  "16-bit frames are read by their top 8 bits); check its overlay",
                  file=sys.stderr)
        frame = {"frame": path.name, "time": when.isoformat(sep=" ") if when else "",
                 "elapsed_s": float(elapsed), "time_source": source}
        particles = particle_rows(frame, candidates, records, self.um_per_px)
        frame.update(frame_summary(particles, rgb.shape[0] * rgb.shape[1]))
        fired = self.alarm.update(frame["pg"])
        frame.update(cusum=self.alarm.cusum, alarm=int(self.alarm.fired),
                     event="alarm" if fired else "")
        append_rows(self.out / PARTICLES_CSV, particles, PARTICLE_COLUMNS)
        append_rows(self.out / FRAMES_CSV, [frame], FRAME_COLUMNS)  # last: the frame is done
        for row in particles:
            self.picks.add(row)
        self.frames.append({k: str(v) if v is not None else "" for k, v in frame.items()})
        index = len(self.frames) - 1
        if fired or (self.overlay_every and index % self.overlay_every == 0):
            from gacrystal.monitor_report import draw_overlay
            draw_overlay(rgb, frame, particles, self.out / OVERLAYS / f"{Path(path.name).stem}.png")
        if fired:
            self.on_alarm(frame)


def in_groups(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def file_signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None when it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def new_frames(folder: Path, monitor: Monitor) -> list[Path]:
    """The frames in folder, in natural order ("10" after "9"), not yet done, and not given up on
    unless the file has changed since."""
    from gacrystal.images import list_images
    done = monitor.done

    def given_up(path):
        entry = monitor.unreadable.get(path.name)
        return entry is not None and entry[1] == file_signature(path)
    return [p for p in list_images(folder) if p.name not in done and not given_up(p)]


def watch(monitor: Monitor, folder: Path, poll_s: float, retries: int, frames_per_batch: int,
          stop_after_idle: float = 0.0, on_poll=None):
    """Processes each new frame of a folder a probe is writing into, until Ctrl-C (or, with
    stop_after_idle, that many seconds without a new frame).

    A frame is taken once its size and modification time are the same at two polls in a row (the
    writer is done with it). One that still cannot be read is tried again at the next polls; after
    `retries` failures with the file unchanged it is reported as unreadable and left alone until
    the file changes. on_poll(processed) is called after each poll that did work.
    """
    last_seen, failures = {}, {}
    idle_since = time.monotonic()
    while True:
        ready = []
        for path in new_frames(folder, monitor):
            signature = file_signature(path)
            if signature is None:  # removed or renamed since the listing
                continue
            if last_seen.get(path.name) == signature and signature[0] > 0:
                ready.append(path)
            elif path.name in last_seen:
                failures.pop(path.name, None)  # still being written: not a failure
            last_seen[path.name] = signature
        for group in in_groups(ready, frames_per_batch):
            failed = monitor.process(group, report_errors=False)
            for path in group:
                if path not in failed:
                    last_seen.pop(path.name, None)
                    failures.pop(path.name, None)
            for path, why in failed.items():
                failures[path.name] = failures.get(path.name, 0) + 1
                if failures[path.name] >= retries:
                    monitor.report_unreadable(path, why)
                    failures.pop(path.name)
        if ready:
            idle_since = time.monotonic()
            if on_poll:
                on_poll(len(ready))
        elif stop_after_idle and time.monotonic() - idle_since >= stop_after_idle:
            return
        time.sleep(poll_s)


def save_state(out: Path, state: dict):
    from gacrystal.files import write_text_atomic
    write_text_atomic(out / STATE_FILE, json.dumps(state, indent=2))


def load_state(out: Path) -> dict | None:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def clear_outputs(out: Path):
    """--overwrite: removes what an earlier run wrote into out (and nothing else)."""
    import shutil
    for name in (FRAMES_CSV, PARTICLES_CSV, UNREADABLE_CSV, STATE_FILE, "trend.png",
                 "monitor.html"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / OVERLAYS, ignore_errors=True)
