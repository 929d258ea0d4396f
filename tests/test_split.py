"""The 70/25/5 split: counts, order, copying, manifest, refusals and unreadable files."""
import csv
import hashlib
import os
import shutil
import stat

import pytest

from gacrystal.cli import run_main
from gacrystal.errors import UserError
from gacrystal.images import KAGGLE_SUBPATH, find_class_folders, list_images, natural_key
from GAsplit import main
from gacrystal.dataset.splitting import partition, split_counts


def tree_state(root):
    """Every file's bytes hash and modification time, and every folder: to prove nothing changed."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest()
                                            if p.is_file() else "dir", p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_counts_for_the_real_class_sizes():
    assert split_counts(6860) == (4802, 1715, 343)
    assert split_counts(6804) == (4762, 1701, 341)
    for n in range(0, 300):
        train, val, test = split_counts(n)
        assert train + val + test == n and min(train, val, test) >= 0


def test_partition_of_real_class_sizes_keeps_order_and_covers_every_file():
    names = [f"PG ({n}).png" for n in range(1, 6805)]
    parts = partition(sorted(names, key=natural_key))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [4762, 1701, 341]
    assert parts["train"][:3] == ["PG (1).png", "PG (2).png", "PG (3).png"]
    assert parts["val"][0] == "PG (4763).png" and parts["test"][-1] == "PG (6804).png"


def test_natural_order_puts_9_before_10_before_100():
    names = ["PG (100).png", "PG (10).png", "PG (9).png", "PG (5310).png", "PG (531).png"]
    assert sorted(names, key=natural_key) == [
        "PG (9).png", "PG (10).png", "PG (100).png", "PG (531).png", "PG (5310).png"]


def test_shuffle_is_seeded_and_differs_from_file_order():
    items = list(range(100))
    assert partition(items, shuffle=True, seed=1) == partition(items, shuffle=True, seed=1)
    assert partition(items, shuffle=True, seed=1) != partition(items)


def test_class_folders_are_found_from_kaggle_root_or_below(synthetic_root):
    expected = find_class_folders(synthetic_root)
    assert expected["CEX"].name == "cex" and expected["PG"].name == "pg"
    assert find_class_folders(synthetic_root / KAGGLE_SUBPATH) == expected
    # The zip extracted without its top archive/ folder, or from one level down:
    assert find_class_folders(synthetic_root / "archive") == expected
    assert find_class_folders(synthetic_root / "archive" / "cropped") == expected
    assert find_class_folders(synthetic_root / "nothing-here") is None


def read_manifest(dest):
    with open(dest / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_split_copies_files_and_manifest_hashes_match(synthetic_root, tmp_path):
    before = tree_state(synthetic_root)
    dest = tmp_path / "split"
    main(["--source", str(synthetic_root), "--dest", str(dest), "--no-group"])
    assert tree_state(synthetic_root) == before
    rows = read_manifest(dest)
    assert len(rows) == 80
    for row in rows:
        copied = open(row["dest"], "rb").read()
        assert hashlib.sha256(copied).hexdigest() == row["sha256"]
        assert len(copied) == int(row["size"])
        assert row["dest"].endswith(os.path.join(row["split"], row["class"], os.path.basename(row["source"])))
    counts = {(s, c): len(list_images(dest / s / c)) for s in ("train", "val", "test")
              for c in ("CEX", "PG")}
    assert counts == {("train", "CEX"): 28, ("val", "CEX"): 10, ("test", "CEX"): 2,
                      ("train", "PG"): 28, ("val", "PG"): 10, ("test", "PG"): 2}
    assert [p.name for p in list_images(dest / "train" / "CEX")][:3] == [
        "CEX (1).png", "CEX (2).png", "CEX (3).png"]


def test_a_split_of_synthetic_images_says_so_and_one_of_other_images_does_not(synthetic_root,
                                                                                tmp_path):
    main(["--source", str(synthetic_root), "--dest", str(tmp_path / "synthetic")])
    assert (tmp_path / "synthetic" / "generator.json").is_file()  # what GAmain.py reads
    labelled = tmp_path / "labelled"
    shutil.copytree(synthetic_root / "archive", labelled / "archive")  # the images, not the stamp
    main(["--source", str(labelled), "--dest", str(tmp_path / "labelled_split")])
    assert not (tmp_path / "labelled_split" / "generator.json").exists()


def test_read_only_source_is_left_untouched(synthetic_root, tmp_path):
    import shutil
    source = tmp_path / "readonly"
    shutil.copytree(synthetic_root, source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = tree_state(source)
    try:
        main(["--source", str(source), "--dest", str(tmp_path / "split")])
        assert tree_state(source) == before
    finally:
        for path in [source, *source.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_non_empty_dest_is_refused_and_overwrite_keeps_other_files(synthetic_root, tmp_path):
    dest = tmp_path / "split"
    main(["--source", str(synthetic_root), "--dest", str(dest)])
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        main(["--source", str(synthetic_root), "--dest", str(dest)])
    assert run_main(main, ["--source", str(synthetic_root), "--dest", str(dest)]) == 2
    main(["--source", str(synthetic_root), "--dest", str(dest), "--overwrite", "--shuffle"])
    assert (dest / "notes.txt").read_text() == "mine"
    assert len(read_manifest(dest)) == 80 == len(list(dest.rglob("*.png")))


def test_unreadable_files_are_left_out_and_listed(synthetic_root, tmp_path):
    import shutil
    source = tmp_path / "source"
    shutil.copytree(synthetic_root / KAGGLE_SUBPATH, source)
    (source / "cex" / "CEX (900).png").write_bytes(b"")
    (source / "pg" / "PG (901).png").write_text("not an image")
    good = (source / "pg" / "PG (1).png").read_bytes()
    (source / "pg" / "PG (902).png").write_bytes(good[: len(good) // 2])  # truncated
    dest = tmp_path / "split"
    main(["--source", str(source), "--dest", str(dest)])
    with open(dest / "skipped.csv", newline="") as f:
        skipped = {os.path.basename(row["source"]) for row in csv.DictReader(f)}
    assert skipped == {"CEX (900).png", "PG (901).png", "PG (902).png"}
    copied = {p.name for p in dest.rglob("*.png")}
    assert not skipped & copied and len(copied) == 80


def test_missing_source_says_how_to_get_data(tmp_path):
    with pytest.raises(UserError, match="(?s)Kaggle.*GAsynth"):
        main(["--source", str(tmp_path / "absent"), "--dest", str(tmp_path / "split")])
    (tmp_path / "empty" / "cex").mkdir(parents=True)
    (tmp_path / "empty" / "PG").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        main(["--source", str(tmp_path / "empty"), "--dest", str(tmp_path / "split")])


def test_a_dest_inside_the_source_or_the_source_inside_the_dest_is_refused(synthetic_root):
    inside = synthetic_root / "inside"
    with pytest.raises(UserError, match="overlap"):
        main(["--source", str(synthetic_root), "--dest", str(inside)])
    assert not inside.exists()
    with pytest.raises(UserError, match="overlap"):
        main(["--source", str(synthetic_root / KAGGLE_SUBPATH), "--dest", str(synthetic_root)])


def test_a_split_without_one_class_in_val_or_test_says_so(synthetic_root, tmp_path, capsys):
    few = tmp_path / "few"
    folders = find_class_folders(synthetic_root)
    for name, count in (("cex", 20), ("pg", 2)):
        (few / name).mkdir(parents=True)
        for path in list_images(folders[name.upper()])[:count]:
            shutil.copy(path, few / name)
    main(["--source", str(few), "--dest", str(tmp_path / "split"), "--no-group"])
    out = capsys.readouterr().out
    assert "WARNING: val/ holds no PG images" in out and "--val_fraction" in out  # 2 PG: 1/0/1
    assert "WARNING: train/" not in out
    main(["--source", str(synthetic_root), "--dest", str(tmp_path / "whole")])
    assert "WARNING" not in capsys.readouterr().out


def test_crops_the_monitor_exported_lead_to_a_fine_tune(tmp_path):
    import GAsplit
    assert "--init_weights" not in GAsplit.next_command(str(tmp_path), "images/split")
    (tmp_path / "crops.csv").write_text("file,class\n")  # GAmonitor.py --export_crops's table
    assert "--data images/split --init_weights MODEL" in GAsplit.next_command(str(tmp_path),
                                                                              "images/split")
