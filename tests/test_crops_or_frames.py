"""Crops or frames: the labeller warns of whole frames, the monitor of a folder of crops."""
from PIL import Image

from gacrystal.crops_or_frames import crop_side, crop_warning, frame_warning


def grey(path, width, height):
    Image.new("L", (width, height), 128).save(path)
    return path


def test_the_crop_side_is_the_cards_or_the_kaggle_crops():
    assert crop_side({"crop_size": 64}) == 64
    assert crop_side({"origin": "original project"}) == 151


def test_a_frame_among_crops_is_named_with_the_count(tmp_path):
    card = {"crop_size": 151}
    crops = [grey(tmp_path / f"CEX ({i}).png", 151, 151) for i in range(3)]
    crops.append(grey(tmp_path / "PG.png", 266, 249))  # the largest real PG crops
    assert frame_warning(crops, card) is None
    frame = grey(tmp_path / "frame.png", 640, 480)
    strip = grey(tmp_path / "strip.png", 151, 20)  # far from square
    unreadable = tmp_path / "broken.png"
    unreadable.write_bytes(b"not a png")
    warning = frame_warning(crops + [frame, strip, unreadable], card)
    assert warning.startswith("warning: 2 of 7 images look like whole frames")
    assert "frame.png, 640 x 480 px" in warning and "GAmonitor.py --frames" in warning


def test_a_folder_of_crops_given_as_frames_is_named(tmp_path):
    card = {"crop_size": 151}
    for i in range(3):
        grey(tmp_path / f"CEX ({i}).png", 151, 151)
    grey(tmp_path / "PG.png", 266, 249)
    warning = crop_warning(tmp_path, card)
    assert "crop-sized (at most 266 px" in warning
    assert f"GAinfer.py --images {tmp_path}" in warning
    assert crop_warning(tmp_path, {"crop_size": 48}) is None  # frames to a model of tiny crops
    grey(tmp_path / "frame.png", 640, 480)
    assert crop_warning(tmp_path, card) is None
    assert crop_warning(tmp_path / "absent", card) is None
