"""Hostile files, fuzzed bytes, unsafe or broken model files, read-only sources and locks."""
import csv
import hashlib
import os
import shutil
import stat
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from hostile import NON_UTF8_NAME, make_corpus, png_bytes

from gacrystal.cli import run_main
import GAinfer
from gacrystal import load_classifier
import GAmain
import GAsplit
from gacrystal.errors import UserError
from gacrystal.files import CSV_TEXT, exclusive_lock
from gacrystal.images import ImageError, read_rgb


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "images"
    return folder, make_corpus(folder)


def test_each_hostile_file_is_read_or_refused_with_its_reason(corpus):
    folder, expected = corpus
    for name, error in expected.items():
        if error is None:
            pixels = read_rgb(folder / name, 32)
            assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8, name
        else:
            with pytest.raises(ImageError, match=error):
                read_rgb(folder / name, 32)


def test_a_decompression_bomb_is_refused_before_it_is_decoded(corpus):
    folder, _ = corpus
    tracemalloc.start()
    with pytest.raises(ImageError, match="too large"):
        read_rgb(folder / "bomb.png", 32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 2**20  # its declared 40 gigapixels would need 40 GB


def test_16_bit_grey_keeps_its_top_8_bits(corpus):
    folder, _ = corpus
    eight_bit = read_rgb(folder / "grey.png")
    assert np.array_equal(read_rgb(folder / "sixteen_bit.png"), eight_bit)


VALID_PNG = png_bytes(Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)))


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.integers(0, len(VALID_PNG) - 1), st.binary(min_size=1, max_size=16)).map(
        lambda cut: VALID_PNG[:cut[0]] + cut[1] + VALID_PNG[cut[0] + len(cut[1]):]),
    st.integers(0, len(VALID_PNG)).map(lambda n: VALID_PNG[:n]),
))
def test_fuzzed_bytes_give_pixels_or_an_image_error(data):
    """Random bytes, and valid PNGs with bytes overwritten or cut off, never raise anything else."""
    try:
        pixels = read_rgb(data, 16)
    except ImageError:
        return
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8


def test_split_reports_hostile_files_by_name_and_copies_the_rest(corpus, synthetic_root,
                                                                  tmp_path, capsys):
    folder, expected = corpus
    source = tmp_path / "source"
    shutil.copytree(synthetic_root / "archive/cropped/cropped", source, symlinks=True)
    for path in folder.iterdir():  # the corpus joins the CEX folder, links as links
        target = source / "cex" / path.name
        if path.is_symlink():
            os.symlink(os.readlink(path), target)
        else:
            shutil.copyfile(path, target)
    dest = tmp_path / "split"
    assert run_main(GAsplit.main, ["--source", str(source), "--dest", str(dest)]) == 0
    with open(dest / "skipped.csv", encoding="utf-8") as f:
        skipped = {os.path.basename(row["source"]): row["error"] for row in csv.DictReader(f)}
    bad = {name: error for name, error in expected.items() if error}
    assert set(skipped) == set(bad)
    for name, error in bad.items():
        assert error in skipped[name]
    copied = {p.name for p in dest.glob("*/CEX/*")}
    assert {name for name, error in expected.items() if error is None} <= copied
    with open(dest / "manifest.csv", **CSV_TEXT) as f:  # the name that is not UTF-8, as it is
        sources = [row["source"] for row in csv.DictReader(f)]
    assert any(os.path.basename(source) == NON_UTF8_NAME and os.path.isfile(source)
               for source in sources)
    assert "zero_bytes.png: empty file" in capsys.readouterr().out  # reported by name


def test_the_training_pipeline_skips_unreadable_files_by_name(corpus):
    from gacrystal.training.data import drop_unreadable, make_dataset
    folder, expected = corpus
    paths = [str(folder / name) for name in expected]
    kept, labels, skipped = drop_unreadable(paths, np.zeros(len(paths)), 32)
    assert {os.path.basename(p) for p, _ in skipped} == {n for n, e in expected.items() if e}
    assert len(kept) == len(labels) == sum(e is None for e in expected.values())
    images = np.concatenate([x for x, _ in make_dataset(kept, labels, 32, 4)])
    assert images.shape == (len(kept), 32, 32, 3)


def test_labelling_reports_hostile_files_and_labels_the_rest(corpus, runs, tmp_path, capsys):
    folder, expected = corpus
    out = tmp_path / "labels.csv"
    code = run_main(GAinfer.main, ["--weights", str(runs["a"] / "model.onnx"), "--images",
                                         str(folder), "--out", str(out), "--recursive"])
    assert code == 1  # some files failed; every one got its row
    with open(out, **CSV_TEXT) as f:  # a name that is not UTF-8 reads back as itself
        rows = {os.path.basename(r["file"]): r for r in csv.DictReader(f)}
    assert len(rows) == len(expected)  # the folder link loop was not followed
    for name, error in expected.items():
        row = rows[name]
        if error:
            assert row["label"] == "ERROR" and error in row["error"], name
        else:
            # Read and labelled (random-noise pictures may well be rejected as UNKNOWN).
            assert row["label"] in ("CEX", "PG", "UNKNOWN") and 0 <= float(row["p_pg"]) <= 1, name
    assert "could not be read" in capsys.readouterr().err


def lambda_model(outputs=1):
    import keras
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 0.5, name="code_inside")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="sigmoid")(x))


def test_a_keras_file_with_code_is_refused_in_safe_mode(tmp_path):
    path = tmp_path / "lambda.keras"
    lambda_model().save(path)
    with pytest.raises(UserError, match="trust-model"):
        load_classifier(path)


def test_a_legacy_h5_with_a_lambda_layer_needs_trust_model(tmp_path):
    path = tmp_path / "lambda.h5"
    lambda_model().save(path)
    with pytest.raises(UserError, match="code_inside.*--trust-model"):
        load_classifier(path)
    assert load_classifier(path, trust_model=True).image_size == 32


def test_corrupt_and_mismatched_model_files_name_the_file_and_the_expectation(tmp_path):
    import keras
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(UserError, match=f"could not load {corrupt}.*not a .keras archive"):
        load_classifier(corrupt)
    two_outputs = tmp_path / "two.keras"
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs))).save(two_outputs)
    with pytest.raises(UserError, match=r"two.keras is not a CEX/PG classifier.*output \(batch, 1\)"):
        load_classifier(two_outputs)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07" + os.urandom(300))
    with pytest.raises(UserError, match=f"could not load {onnx}"):
        load_classifier(onnx)


def test_backbone_weights_of_another_network_are_refused_by_name(split_dir, tmp_path, capsys):
    import keras
    wrong = tmp_path / "resnet50_notop.weights.h5"
    keras.applications.ResNet50(weights=None, include_top=False,
                                input_shape=(32, 32, 3)).save_weights(wrong)
    code = run_main(GAmain.main, ["--data", str(split_dir), "--runs", str(tmp_path / "runs"),
                                        "--weights", str(wrong), "--image_size", "32"])
    err = capsys.readouterr().err
    assert code == 2 and f"could not load {wrong} for ResNet101" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def snapshot(folder):
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns,
                stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_split_never_modifies_a_read_only_source(synthetic_root, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(synthetic_root, source)
    for path in [*source.rglob("*"), source]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot(source)
    try:
        GAsplit.main(["--source", str(source), "--dest", str(tmp_path / "split")])
        assert snapshot(source) == before
        assert sorted(p.name for p in source.iterdir()) == ["archive", "generator.json"]
    finally:
        for path in [source, *source.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_second_writer_to_the_same_destination_is_refused(synthetic_root, split_dir, runs,
                                                            tmp_path):
    dest = tmp_path / "split"
    with exclusive_lock(dest):  # as a split running in another process would hold it
        with pytest.raises(UserError, match=f"another split .*is writing to {dest}"):
            GAsplit.main(["--source", str(synthetic_root), "--dest", str(dest), "--overwrite"])
    assert not dest.exists()
    with exclusive_lock(runs["b"]):
        with pytest.raises(UserError, match="another training run"):
            GAmain.main(["--resume", str(runs["b"])])
    out = tmp_path / "labels.csv"
    with exclusive_lock(out):
        with pytest.raises(UserError, match="another labelling run"):
            GAinfer.main(["--weights", str(runs["a"] / "model.onnx"), "--images",
                          str(split_dir / "test" / "PG"), "--out", str(out)])
    assert not out.exists()
    GAsplit.main(["--source", str(synthetic_root), "--dest", str(dest)])  # free again
    assert (dest / "manifest.csv").exists()
