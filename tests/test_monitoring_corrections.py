"""Corrections back into training (gacrystal/monitoring/corrections.py, GAmonitor.py
--export_crops): the verdicts, the template that never covers the user's marks, crops exported
in the Kaggle layout without overwriting anything, and the round trip: monitor -> corrections ->
export -> fine-tune (GAmain.py --init_weights) -> the corrected region changes label."""
import csv
import shutil

import pytest

import GAmonitor
from gacrystal.errors import UserError
from gacrystal.monitoring.corrections import (CORRECTION_COLUMNS, CROPS_CSV, place,
                                              read_corrections, training_class, write_template)
from probe import disc_frames


def test_verdicts_give_the_class_a_region_trains_with():
    assert training_class("PG", 0.9, "right") == "PG" and training_class("PG", 0.9, "") == "PG"
    assert training_class("PG", 0.9, "wrong") == "CEX" and training_class("CEX", 0.1, "wrong") == "PG"
    assert training_class("PG", 0.9, "neither") is None
    assert training_class("UNKNOWN", 0.7, "") is None  # no class unless a verdict gives one
    assert training_class("UNKNOWN", 0.7, "wrong") == "PG"


def test_a_verdict_file_is_checked_and_the_template_never_covers_marks(tmp_path):
    class Region:
        frame, particle, x, y, w, h, label, p_pg = "frame (1).png", 3, 0, 0, 64, 64, "PG", 0.8
    assert write_template(tmp_path, [Region()])
    path = tmp_path / "corrections.csv"
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == CORRECTION_COLUMNS and rows[0]["verdict"] == ""
    path.write_bytes(path.read_bytes().replace(b",\r\n", b",wrong\r\n"))
    assert read_corrections(path) == {("frame (1).png", 3): "wrong"}
    assert not write_template(tmp_path, [])  # a mark is there: left alone
    assert read_corrections(path) == {("frame (1).png", 3): "wrong"}
    path.write_bytes(path.read_bytes().replace(b",wrong", b",maybe"))
    with pytest.raises(UserError, match="line 2: verdict must be right, wrong, neither"):
        read_corrections(path)
    with pytest.raises(UserError, match="no corrections file"):
        read_corrections(tmp_path / "missing.csv")


def test_place_never_overwrites(tmp_path):
    first, written = place(tmp_path, "a.png", b"one")
    assert written and first.read_bytes() == b"one"
    assert place(tmp_path, "a.png", b"one") == (first, False)  # the same: not again
    other, written = place(tmp_path, "a.png", b"two")
    assert written and other != first and first.read_bytes() == b"one"


@pytest.mark.training
def test_monitor_correct_export_and_fine_tune_change_the_corrected_regions(runs, tmp_path):
    """The tiny model calls the needle field's tiles PG; the user marks every such tile wrong
    (CEX), the discs stay PG. The marked tiles are exported as CEX, and a fine-tune on the exported
    crops (the split's three parts hold all of them) labels them CEX. (Marking one region among
    two hundred made a class of one crop, which a fine-tune learnt on some CPUs only.)"""
    import GAmain
    from gacrystal.classifier import load_classifier
    from gacrystal.monitoring.tables import PARTICLES_CSV
    frames, out, dest = tmp_path / "frames", tmp_path / "out", tmp_path / "crops"
    disc_frames(frames, count=4, spike=2)
    model = runs["a"] / "model.keras"
    GAmonitor.main(["--frames", str(frames), "--weights", str(model), "--out", str(out),
                    "--min_area", "2000", "--alarm_threshold", "4"])
    assert list(csv.DictReader(open(out / "corrections.csv"))), "the page offers regions to mark"
    wrong_tiles = [r for r in csv.DictReader(open(out / PARTICLES_CSV))
                   if r["found_by"] == "tile" and r["label"] == "PG" and r["counted"] == "1"]
    assert len(wrong_tiles) >= 10, "the tiny model calls needle tiles PG (else nothing to correct)"
    corrections = tmp_path / "corrections.csv"
    with open(corrections, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CORRECTION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "predicted": r["label"], "verdict": "wrong"} for r in wrong_tiles)
    argv = ["--out", str(out), "--export_crops", str(dest), "--corrections", str(corrections)]
    assert GAmonitor.main(argv) == 0
    crops = {(r["frame"], r["particle"]): r for r in csv.DictReader(open(dest / CROPS_CSV))}
    marked = [crops[(r["frame"], r["particle"])]["file"] for r in wrong_tiles]
    assert all(name.startswith("cex/") for name in marked)  # exported as the verdict says
    assert GAmonitor.main(argv) == 0 and len(list(csv.DictReader(open(dest / CROPS_CSV)))) == \
        len(crops)  # again: nothing written twice
    split = tmp_path / "split"
    for part in ("train", "val", "test"):
        for class_name in ("cex", "pg"):
            shutil.copytree(dest / class_name, split / part / class_name.upper())
    # BatchNorm statistics at Keras's 0.99 lag the fine-tune: measured on an AVX-512 EPYC, the
    # validation accuracy swung between 4% and 96% from epoch to epoch and the last epoch landed
    # at 66% (134 of 208 tiles CEX). 0.9 and a cosine decay settle it, as they do for the demo.
    GAmain.main(["--data", str(split), "--runs", str(tmp_path / "runs"), "--init_weights",
                 str(model), "--image_size", "32", "--batch_size", "16", "--lr", "0.01",
                 "--backbone", "ResNet50", "--epochs", "12", "--no-export_onnx", "--no-augment",
                 "--weights", "none", "--bn_momentum", "0.9", "--lr_schedule", "cosine"])
    tuned = next((tmp_path / "runs").iterdir()) / "model.keras"
    files = [str(dest / name) for name in marked]
    after = [r["label"] for r in load_classifier(tuned).label(files, reject=False)]
    print(f"{len(files)} tiles of {len(crops)} regions marked wrong; the fine-tuned model "
          f"labels {after.count('CEX')} of them CEX")
    assert after.count("CEX") >= 0.9 * len(files)
