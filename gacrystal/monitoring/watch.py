"""Listing and watching a folder of frames: the frames not yet done (in natural order), a folder
of experiment folders, and a loop that takes each new frame once its writer is done with it."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from gacrystal.monitoring.tables import file_signature

if TYPE_CHECKING:
    from gacrystal.monitoring.monitor import Monitor


def in_groups(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def experiment_folders(folder: Path) -> list[Path]:
    """The experiment folders of a folder that holds no frames of its own: its sub-folders
    (hidden ones and links skipped) that hold frames, in natural order. [] for a folder of
    frames."""
    from gacrystal.images import list_images, natural_key
    if list_images(folder):
        return []
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
            and not p.name.startswith(".") and list_images(p)]
    return sorted(subs, key=natural_key)


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
