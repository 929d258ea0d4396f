"""Writes synthetic in-situ microscope images laid out exactly like the Kaggle dataset.

    python GAsynth.py                          # the settings below
    python GAsynth.py --cex_count 6860 --pg_count 6804 --out images/synthetic-full
    python GAsynth.py --compare FOLDER_OF_REAL_CROPS       # how close they come to real crops
    python GAsynth.py --frames 60 --spike_frame 31         # whole probe frames, for GAmonitor.py

Output: OUT/archive/cropped/cropped/cex/CEX (n).png and OUT/archive/cropped/cropped/pg/PG (n).png,
8-bit grey images stored as RGB, as in the real download (see docs/data.md). --compare takes a
folder of real crops, such as a few from the Kaggle set.

How each trait of the real images is imitated, and what the real ones look like, is written in
gacrystal/synthetic/crops.py (the drawing) and docs/data.md. The same seed gives the same files
whatever the counts.

With --frames N it writes N whole probe frames instead (default size 1280 x 960): a spiking run,
pure CEX until spike_frame, then PG agglomerates added step by step, plus bubbles, out-of-focus
blobs and CEX starbursts, with truth.csv (gacrystal/synthetic/frames.py), into
images/frames-synthetic unless --out is given. With --from_crops DIR the frames are made of real
crops instead: a mosaic of DIR's CEX crops with its PG crops pasted from the spike on
(gacrystal/synthetic/mosaic.py), e.g.

    python GAsynth.py --frames 40 --spike_frame 11 --pg_first 1 --pg_per_step 1 --step_every 3 \
        --from_crops images/kaggle/archive/cropped/cropped --out images/frames-real
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from gacrystal.cli import parse_settings, run_main
from gacrystal.errors import UserError
from gacrystal.images import KAGGLE_SUBPATH
from gacrystal.synthetic.crops import generate_dataset, remove_previous

# --- settings (edit here, or override on the command line with the same names) ---
out = "images/synthetic"  # folder to write; images go to OUT/archive/cropped/cropped/{cex,pg}
cex_count = 600  # number of CEX images (the real dataset has 6860)
pg_count = 600  # number of PG images, rotated copies included (the real dataset has 6804)
cex_size = 151  # side of the square CEX crops in pixels (real: 151)
pg_size_min = 130  # smallest side of a PG crop in pixels (real: about 130)
pg_size_max = 230  # largest side of a PG crop in pixels (real: about 230)
seed = 42  # random seed; the same seed gives the same images
overwrite = False  # write into an OUT that already holds images
# realism check (writes no images)
compare = None  # a folder of real crops: print how close synthetic crops come to them
compare_count = 60  # synthetic crops per class drawn for --compare
compare_sheet = "realism.png"  # --compare writes real and synthetic crops side by side here
weights = "weights/model.keras"  # --compare also labels the real crops with this model, if present
# whole probe frames (writes frames instead of crops)
frames = 0  # write this many whole frames (a spiking run, with truth.csv); 0: crops
spike_frame = 31  # the first frame with PG in view; 0: pure CEX throughout
frame_width = 1280  # px (the real probe's frame size is not known here)
frame_height = 960  # px
frame_interval = 10.0  # seconds between frames (their EXIF time and file time)
step_every = 10  # frames between one PG addition and the next
pg_first = 4  # PG particles in view at the spike
pg_per_step = 3  # PG particles added with each later addition
from_crops = None  # a folder of real crops (cex/ and pg/, or Kaggle names): frames are mosaics of them
# --- end of settings

FRAMES_OUT = "images/frames-synthetic"  # where --frames writes unless --out is given


def check_settings(s):
    for name in ("cex_count", "pg_count"):
        if s[name] < 0:
            raise UserError(f"{name} must be 0 or more. Received: {name}={s[name]}")
    if not 16 <= s["pg_size_min"] <= s["pg_size_max"]:
        raise UserError("need 16 <= pg_size_min <= pg_size_max. Received: "
                        f"pg_size_min={s['pg_size_min']}, pg_size_max={s['pg_size_max']}")
    if s["cex_size"] < 16:
        raise UserError(f"cex_size must be at least 16. Received: cex_size={s['cex_size']}")
    target = Path(s["out"], KAGGLE_SUBPATH)
    if target.exists() and any(target.rglob("*.png")) and not s["overwrite"]:
        raise UserError(f"{target} already holds images; choose another --out, or pass "
                        "--overwrite to write over them")


def compare_with_real(folder, count, seed, sheet, weights, cex_size, pg_size_range):
    """--compare: the realism figures (gacrystal.synthetic.realism), a side-by-side sheet, and how a
    model trained on synthetic crops labels the real ones."""
    from gacrystal.synthetic import realism
    if count < 1:
        raise UserError(f"compare_count must be at least 1. Received: compare_count={count}")
    real = realism.real_crops(folder)
    synthetic = realism.synthetic_sample(count, seed, cex_size, pg_size_range)
    print(realism.format_rows(realism.compare(real, synthetic)))
    realism.write_sheet(real, synthetic, sheet)
    print(f"wrote {sheet}: real crops above synthetic ones, per class")
    if not Path(weights).is_file():
        print(f"no model at {weights}: train one with `python GAmain.py --demo` to see how a "
              "synthetic-trained model labels the real crops")
        return
    print(f"\nthe real crops under {weights}:")
    from gacrystal.labelling.folder import format_table
    records = realism.label_real(weights, real)
    print(format_table(records))
    right = sum(r["label"] == r["true"] for r in records)
    print(f"{right} of {len(records)} labelled right; "
          f"{sum(r['label'] == 'UNKNOWN' for r in records)} rejected as unlike the training images")


def write_frames(s: dict, out: str):
    """--frames N: a spiking run of whole frames (synthetic, or mosaics of real crops) and its
    truth.csv."""
    from gacrystal.images import list_images
    from gacrystal.synthetic.frames import generate_frames
    if s["frames"] < 1 or s["spike_frame"] < 0 or s["step_every"] < 1 or s["frame_interval"] <= 0:
        raise UserError("need frames >= 1, spike_frame >= 0, step_every >= 1, frame_interval > 0. "
                        f"Received: frames={s['frames']}, spike_frame={s['spike_frame']}, "
                        f"step_every={s['step_every']}, frame_interval={s['frame_interval']}")
    if s["pg_first"] < 1 or s["pg_per_step"] < 0:
        raise UserError(f"need pg_first >= 1 and pg_per_step >= 0. Received: pg_first="
                        f"{s['pg_first']}, pg_per_step={s['pg_per_step']}")
    if min(s["frame_width"], s["frame_height"]) < 320:
        raise UserError(f"frames must be at least 320 x 320 px. Received: frame_width="
                        f"{s['frame_width']}, frame_height={s['frame_height']}")
    draw = None
    if s["from_crops"]:
        from gacrystal.synthetic.mosaic import MosaicDrawer
        draw = MosaicDrawer.from_folder(s["from_crops"])
    existing = list_images(out) if Path(out).is_dir() else []
    if existing and not s["overwrite"]:
        raise UserError(f"{out} already holds images; choose another --out, or pass --overwrite "
                        "to write over them")
    others = [p.name for p in existing if not re.fullmatch(r"frame \(\d+\)\.png", p.name)]
    if others:  # they would be monitored along with the new frames
        raise UserError(f"{out} holds other images too ({others[0]}, ...); write the frames into "
                        "an empty folder")
    for old in existing:
        old.unlink()
    rows = generate_frames(out, s["frames"], s["spike_frame"], s["frame_width"],
                           s["frame_height"], s["frame_interval"], s["step_every"], s["seed"],
                           pg_first=s["pg_first"], pg_per_step=s["pg_per_step"], draw=draw)
    pg = sum(r["kind"] == "pg" for r in rows)
    made_of = f"mosaics of the crops in {s['from_crops']}" if draw else "synthetic"
    print(f"wrote {s['frames']} frames of {s['frame_width']} x {s['frame_height']} px ({made_of}) "
          f"to {out} ({pg} PG particles from frame {s['spike_frame']} on) and {out}/truth.csv")
    print(f"next: python GAmonitor.py --frames {out}{adapt_if_pure_baseline(s['spike_frame'])}")


def adapt_if_pure_baseline(spike_frame: int, baseline_frames: int = 10) -> str:
    """--adapt, where the monitor's baseline frames (GAmonitor.py's default 10) are drawn free of
    PG: the demo model needs it on synthetic frames (it calls part of the needle field PG, so an
    alarm that is not adapted learns a high baseline and may never fire)."""
    return " --adapt" if spike_frame > baseline_frames else ""


def main(argv=None):
    s, given = parse_settings(__file__,
                              "Write synthetic CEX/PG crystal images in the Kaggle layout.", argv)
    if s["frames"]:
        return write_frames(s, s["out"] if "out" in given else FRAMES_OUT)
    if s["compare"]:
        return compare_with_real(s["compare"], s["compare_count"], s["seed"], s["compare_sheet"],
                                 s["weights"], s["cex_size"], (s["pg_size_min"], s["pg_size_max"]))
    check_settings(s)
    if s["overwrite"]:
        remove_previous(s["out"])
    written = generate_dataset(s["out"], s["cex_count"], s["pg_count"], s["cex_size"],
                               (s["pg_size_min"], s["pg_size_max"]), s["seed"])
    root = Path(s["out"], KAGGLE_SUBPATH)
    print(f"wrote {len(written['CEX'])} CEX and {len(written['PG'])} PG images to {root}")
    print(f"next: python GAsplit.py --source {s['out']} --dest images/split")


if __name__ == "__main__":
    sys.exit(run_main(main))
