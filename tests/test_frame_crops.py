"""gacrystal/frame_crops.py: blobs cut from synthetic frames, labelled by the frames' truth."""
import numpy as np

from gacrystal.candidates import Candidate
from gacrystal.frame_crops import label_blob, labelled_blobs
from gacrystal.frames import TRUTH_FILE, generate_frames, read_truth


def blob_at(x, y, w=140, h=140):
    return Candidate(x, y, w, h, kind="blob", area_px=float(w * h))


def test_a_blob_is_labelled_by_the_truth_object_whose_centre_it_covers():
    pg = ("pg", (100, 100, 60, 60))  # centre (130, 130)
    bubble = ("bubble", (400, 400, 40, 40))  # centre (420, 420)
    starburst = ("starburst", (700, 100, 80, 80))  # centre (740, 140)
    objects = [pg, bubble, starburst]
    assert label_blob(blob_at(60, 60), objects) == "PG"
    assert label_blob(blob_at(350, 350), objects) is None  # a bubble: neither class
    assert label_blob(blob_at(680, 80), objects) == "CEX"  # a starburst is CEX
    assert label_blob(blob_at(1000, 600), objects) == "CEX"  # nothing there but the slurry
    # PG wins over a bubble in the same box: the agglomerate is what the crop shows
    assert label_blob(blob_at(60, 60, 400, 400), objects) == "PG"


def test_labelled_blobs_cut_the_monitors_boxes_and_follow_the_truth(tmp_path):
    generate_frames(tmp_path, 2, 2, width=640, height=480, seed=5, progress=False, workers=1)
    truth = read_truth(tmp_path / TRUTH_FILE)
    assert list(truth) == ["frame (1).png", "frame (2).png"]
    assert not any(kind == "pg" for kind, _ in truth["frame (1).png"]["objects"])  # before PG
    found = list(labelled_blobs(tmp_path))
    assert found, "a synthetic frame has bright blobs"
    for name, label, pixels in found:
        assert label in ("CEX", "PG")
        assert pixels.ndim == 3 and pixels.shape[2] == 3 and min(pixels.shape[:2]) >= 130
        assert pixels.dtype == np.uint8
    assert all(label == "CEX" for name, label, _ in found if name == "frame (1).png")
    assert any(label == "PG" for name, label, _ in found if name == "frame (2).png")
