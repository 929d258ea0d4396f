"""Training crops cut from synthetic frames the way the monitor cuts them, labelled by the frames'
truth: the classifier learns the regions it will be asked about.

A crop classifier trained on crops alone never sees what the monitor's blob finder hands it in a
CEX slurry: a box around the brightest, densest place in the frame (rods crossing in a heap, a
starburst), which at 96 px looks more like a granular agglomerate than any CEX training crop.
Measured on ten pure-CEX synthetic frames before this was added: every blob the finder kept was
called PG (53 of 53 with the demo model), about five false PG per frame, and with a baseline that
noisy the alarm cannot see one new agglomerate. The remedy is the one detectors use: train the
classifier on the proposals, labelled by where the true objects are.

    write_frame_crops("images/synthetic", cex_count=100, pg_count=60, seed=42)

A blob whose box covers a PG agglomerate's centre is a PG crop; one that covers no truth object
(or only a starburst, which is CEX) is a CEX crop; one that covers a bubble or an out-of-focus
blob is neither and is left out. The frames come from their own seeds (FRAME_SEED_OFFSET above the
dataset's), never those of bench/monitor.py's runs, and are drawn in a temporary folder.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from gacrystal.candidates import cut, find_blobs
from gacrystal.frames import TRUTH_FILE, generate_frames, read_truth
from gacrystal.images import grey_levels, read_rgb

FRAME_SEED_OFFSET = 1000  # frames for training crops: seeds no benchmark run uses
MIN_AREA = 3000  # px: GAmonitor.py's default smallest blob
FRAMES_PER_ROUND = 12
NEITHER = {"bubble", "out_of_focus"}


def label_blob(blob, objects: list[tuple[str, tuple[int, int, int, int]]]) -> str | None:
    """"PG", "CEX" or None (neither) for a blob, from the truth objects (kind, box) of its frame."""
    covered = {kind for kind, (x, y, w, h) in objects if blob.covers(x + w / 2, y + h / 2)}
    if "pg" in covered:
        return "PG"
    return None if covered & NEITHER else "CEX"


def labelled_blobs(frames_dir: Path):
    """Yields (frame name, label, crop pixels) for every blob of every frame in frames_dir that
    is CEX or PG, in frame order."""
    truth = read_truth(frames_dir / TRUTH_FILE)  # in frame order, as truth.csv is written
    for name, frame in truth.items():
        rgb = read_rgb(frames_dir / name)
        for blob in find_blobs(grey_levels(rgb), MIN_AREA):
            label = label_blob(blob, frame["objects"])
            if label is not None:
                yield name, label, cut(rgb, blob)


def write_frame_crops(cex_dir: Path, pg_dir: Path, cex_count: int, pg_count: int, seed: int,
                      first_number: dict[str, int]) -> dict[str, int]:
    """Writes up to cex_count CEX and pg_count PG blob crops from synthetic frames into cex_dir
    and pg_dir as "CEX (n).png" / "PG (n).png", numbered on from first_number; frames are drawn
    in rounds (half before PG appears, half with PG) until both counts are met. Returns the
    counts written."""
    wanted = {"CEX": cex_count, "PG": pg_count}
    written = {"CEX": 0, "PG": 0}
    folders = {"CEX": Path(cex_dir), "PG": Path(pg_dir)}
    for round_number in range(20):  # a bound: each round yields dozens of each
        if all(written[k] >= wanted[k] for k in wanted):
            break
        with tempfile.TemporaryDirectory() as scratch:
            generate_frames(scratch, FRAMES_PER_ROUND, FRAMES_PER_ROUND // 2 + 1, step_every=2,
                            seed=seed + FRAME_SEED_OFFSET + round_number, progress=False)
            for _, label, pixels in labelled_blobs(Path(scratch)):
                if written[label] < wanted[label]:
                    number = first_number[label] + written[label]
                    Image.fromarray(pixels).save(folders[label] / f"{label} ({number}).png")
                    written[label] += 1
    return written
