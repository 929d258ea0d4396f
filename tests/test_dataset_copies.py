"""Leak-aware split: copies of one crop found and kept in one split; leaks reported."""
import io
import shutil

import numpy as np
import pytest
from PIL import Image

import GAsplit
from gacrystal.dataset.copies import find_groups, leak_summary, signature
from gacrystal.dataset.splitting import partition_groups, split_counts
from gacrystal.images import dihedral
from gacrystal.synthetic.crops import class_rng, draw_cex, draw_pg


def rgb(grey):
    return np.repeat(grey[:, :, None], 3, axis=2)


def groups_of(images):
    return find_groups([signature(rgb(g)) for g in images])


@pytest.fixture(scope="module")
def crops():
    """Ten distinct crops: five PG (not square) and five CEX."""
    return ([draw_pg(class_rng(9, 1, i), (130, 230)) for i in range(5)]
            + [draw_cex(class_rng(9, 0, i), 151) for i in range(5)])


def test_all_eight_transforms_of_a_crop_form_one_group(crops):
    copies = [dihedral(crops[0], k) for k in range(8)]
    images = copies + crops[1:]
    groups = groups_of(images)
    assert groups[0] == list(range(8))
    assert [len(g) for g in groups[1:]] == [1] * 9


def jpeg(grey, quality):
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("L"))


def test_re_encoded_and_resized_copies_are_caught(crops):
    for crop in (crops[1], crops[6]):
        height, width = crop.shape
        resized = np.asarray(Image.fromarray(crop).resize((int(width * 1.2), int(height * 1.2)),
                                                          Image.Resampling.BILINEAR))
        images = [crop, dihedral(jpeg(crop, 75), 5), jpeg(crop, 95), resized]
        assert groups_of(images) == [[0, 1, 2, 3]]


def test_distinct_crops_are_never_merged_even_when_they_differ_slightly(crops):
    images = list(crops)
    for crop in (crops[2], crops[7]):
        patched = crop.copy()
        patched[40:48, 40:48] = np.where(patched[40:48, 40:48] > 128, 0, 255)  # an 8 x 8 px change
        images += [patched, crop[2:, 2:], crop[:-3, 3:]]  # and crops shifted by 2-3 px
    assert all(len(g) == 1 for g in groups_of(images))


def test_flat_identical_images_are_copies():
    flat = np.full((50, 60), 90, np.uint8)
    assert groups_of([flat, flat.T.copy(), np.full((50, 60), 200, np.uint8)]) == [[0, 1], [2]]


def test_groups_stay_whole_and_ratios_stay_within_one_group():
    sizes = np.random.default_rng(0).integers(1, 9, 300)
    groups, start = [], 0
    for size in sizes:
        groups.append(list(range(start, start + size)))
        start += size
    parts = partition_groups(groups)
    where = {item: split for split, items in parts.items() for item in items}
    assert all(len({where[i] for i in g}) == 1 for g in groups)
    targets = dict(zip(("train", "val", "test"), split_counts(start)))
    for split, items in parts.items():
        assert abs(len(items) - targets[split]) <= max(sizes)


def test_leak_summary_counts_val_and_test_copies_of_train_images():
    split_of = ["train", "val", "val", "test", "test", "train"]
    summary = leak_summary(split_of, [[0, 1], [2], [3, 5], [4]])
    assert summary["crossing"] == [[0, 1], [3, 5]]
    assert summary["val_leak"] == 0.5 and summary["test_leak"] == 0.5


@pytest.fixture(scope="module")
def grouped_split(synthetic_root, tmp_path_factory):
    dest = tmp_path_factory.mktemp("grouped") / "split"
    GAsplit.main(["--source", str(synthetic_root), "--dest", str(dest)])
    return dest


def test_default_split_keeps_every_group_in_one_split(grouped_split):
    report = (grouped_split / "leak_report.txt").read_text()
    assert "No group crosses splits" in report and "found in more than one split" not in report
    assert GAsplit.main(["--check", str(grouped_split)]) == 0


def test_check_finds_a_leak_planted_by_hand(grouped_split, tmp_path, capsys):
    dest = tmp_path / "split"
    shutil.copytree(grouped_split, dest)
    source = sorted((dest / "train" / "PG").glob("*.png"))[0]
    Image.fromarray(np.rot90(np.asarray(Image.open(source)))).save(dest / "test" / "PG" / "planted.png")
    capsys.readouterr()
    assert GAsplit.main(["--check", str(dest)]) == 1
    out = capsys.readouterr().out
    assert "Groups that cross splits" in out and "found in more than one split" in out
    assert f"train: {source.name}" in out and "test: planted.png" in out


def test_no_group_gives_the_originals_counts_and_reports_its_leak(synthetic_root, tmp_path):
    dest = tmp_path / "split"
    GAsplit.main(["--source", str(synthetic_root), "--dest", str(dest), "--no-group", "--shuffle"])
    counts = {split: len(list((dest / split / "PG").glob("*.png"))) for split in ("train", "val", "test")}
    assert tuple(counts.values()) == split_counts(40)
    report = (dest / "leak_report.txt").read_text()
    assert "Groups that cross splits" in report  # shuffled file by file: PG copies scatter
