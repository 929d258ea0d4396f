"""GAinfer.py, labelling a folder: the CSV, table and summary, bad files, file kinds, one file,
the threshold, the embedding map, an original-format model calibrated after the fact. Loading a
model and Classifier.label/predict/record (gacrystal/classifier.py): test_classifier.py."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

import GAinfer
from gacrystal import load_classifier
from gacrystal.errors import UserError
from gacrystal.images import list_images, read_rgb


def test_script_writes_csv_table_and_summary(runs, split_dir, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    folder = split_dir / "test" / "PG"
    status = GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(folder),
                           "--out", str(out)])
    assert status == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "label", "p_pg", "confidence", "p_pg_raw", "ood_score",
                            "error"]  # p_pg calibrated, p_pg_raw the network's output
    assert [r["file"] for r in rows] == [str(p) for p in list_images(folder)]
    # Each row against the network itself, run here on the file of that row: the raw output, the
    # card's temperature on it, and the label and confidence that follow from them.
    import keras
    from gacrystal.calibration import apply_temperature
    from gacrystal.images import read_rgb
    model = keras.saving.load_model(runs["a"] / "model.keras")
    card = json.loads((runs["a"] / "config.json").read_text())["model"]
    pixels = np.stack([read_rgb(r["file"], 32, card["resize"]) for r in rows])
    raw = model.predict(pixels.astype(np.float32), verbose=0)[:, 0]
    for r, p_raw in zip(rows, raw):
        p = float(apply_temperature(p_raw, card["calibration"]["temperature"]))
        assert float(r["p_pg_raw"]) == pytest.approx(float(p_raw), abs=1e-4)
        assert float(r["p_pg"]) == pytest.approx(p, abs=1e-4)
        if r["label"] != "UNKNOWN":  # rejected by the OOD check: no class, no confidence
            assert r["label"] == ("PG" if p >= 0.5 else "CEX")
            assert float(r["confidence"]) == pytest.approx(max(p, 1 - p), abs=1e-4)
    assert any(r["label"] != "UNKNOWN" for r in rows)
    printed = capsys.readouterr().out
    assert "P(PG)" in printed and f"{len(rows)} images:" in printed
    with pytest.raises(UserError, match="already exist"):
        GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(folder),
                      "--out", str(out)])


def test_bad_files_get_error_rows_and_the_run_goes_on(runs, split_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((split_dir / "test" / "CEX").glob("*.png"))[:2]
    for p in good:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    (folder / "cut.png").write_bytes(good[0].read_bytes()[:300])
    out = tmp_path / "mixed.csv"
    status = GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(folder),
                           "--out", str(out)])
    assert status == 1
    with open(out, newline="") as f:
        rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}
    assert {n for n, r in rows.items() if r["label"] == "ERROR"} == {"empty.png", "notes.png",
                                                                    "cut.png"}
    assert all(rows[n]["error"] for n in ("empty.png", "notes.png", "cut.png"))
    assert all(rows[p.name]["label"] in ("CEX", "PG") for p in good)


def test_embedding_map_writes_plot_and_csv(runs, split_dir, tmp_path):
    folder = split_dir / "val" / "CEX"
    map_dir = tmp_path / "map"
    GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(folder),
                  "--map", str(map_dir), "--clusters", "3"])
    assert Image.open(map_dir / "embedding_map.png").size[0] > 500
    with open(map_dir / "embedding_map.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(list_images(folder))
    assert {int(r["cluster"]) for r in rows} == {0, 1, 2}
    assert all(r["label"] in ("CEX", "PG", "UNKNOWN") for r in rows)


def test_the_map_takes_its_features_from_the_labelling_pass_for_keras_and_onnx(runs, split_dir):
    """No pass of its own: the pooled features come out of the pass that labels (the last part of
    the OOD features), equal to the pooling layer's output, and model.onnx gives them too."""
    from gacrystal.labelling.folder import label_files, pooled_feature_model
    files = list_images(split_dir / "val" / "CEX")[:4]
    keras_classifier = load_classifier(runs["a"] / "model.keras")
    pixels = np.stack([read_rgb(f, 32, keras_classifier.resize) for f in files])
    direct = pooled_feature_model(keras_classifier).predict(
        keras_classifier.model_input(pixels), verbose=0)
    for model in ("model.keras", "model.onnx"):
        labelled = label_files(load_classifier(runs["a"] / model), files, features=True,
                               progress=False)
        assert labelled.features.shape == direct.shape == (4, 2048)
        np.testing.assert_allclose(labelled.features, direct, rtol=1e-3, atol=1e-4)


def test_missing_model_or_images_say_what_to_do(tmp_path, split_dir):
    with pytest.raises(UserError, match="GAmain.py --demo"):
        GAinfer.main(["--weights", str(tmp_path / "none.keras"),
                      "--images", str(split_dir / "test" / "CEX")])
    with pytest.raises(UserError, match="--recursive"):
        GAinfer.main(["--weights", str(tmp_path / "none.keras"), "--images", str(split_dir)])
    with pytest.raises(UserError, match="no image folder"):
        GAinfer.main(["--images", str(tmp_path / "absent")])


def test_one_image_file_is_labelled_and_another_file_is_refused(runs, split_dir, tmp_path,
                                                                capsys):
    image = sorted((split_dir / "test" / "PG").glob("*.png"))[0]
    out = tmp_path / "one.csv"
    assert GAinfer.main(["--weights", str(runs["a"] / "model.keras"), "--images", str(image),
                         "--out", str(out)]) == 0
    assert "trained on synthetic crops only" in capsys.readouterr().out  # and what to use instead
    with open(out, newline="") as f:
        assert [r["file"] for r in csv.DictReader(f)] == [str(image)]
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(UserError, match="is not a PNG, JPEG, BMP or TIFF image"):
        GAinfer.main(["--images", str(notes)])


def test_jpeg_bmp_tiff_and_subfolders_with_recursive(runs, split_dir, tmp_path):
    source = Image.open(sorted((split_dir / "test" / "PG").glob("*.png"))[0])
    (tmp_path / "sub").mkdir()
    source.save(tmp_path / "a.jpg", quality=95)
    source.save(tmp_path / "b.BMP")
    source.convert("L").save(tmp_path / "c.tif")
    source.save(tmp_path / "sub" / "d.png")
    (tmp_path / "notes.txt").write_text("not an image, not listed")
    model = str(runs["a"] / "model.keras")
    flat, deep = tmp_path / "flat.csv", tmp_path / "deep.csv"
    assert GAinfer.main(["--weights", model, "--images", str(tmp_path), "--out", str(flat)]) == 0
    assert GAinfer.main(["--weights", model, "--images", str(tmp_path), "--out", str(deep),
                         "--recursive"]) == 0
    names = lambda path: [r["file"].rsplit("/", 1)[-1] for r in csv.DictReader(open(path))]  # noqa: E731
    assert names(flat) == ["a.jpg", "b.BMP", "c.tif"]
    assert names(deep) == ["a.jpg", "b.BMP", "c.tif", "d.png"]


def test_the_threshold_setting_defaults_to_the_one_decision_threshold_and_is_checked(runs, tmp_path):
    from gacrystal.cli import read_settings_block
    from gacrystal.images import DECISION_THRESHOLD
    block = {name: value for name, value, _ in read_settings_block(GAinfer.__file__)}
    assert block["threshold"] == DECISION_THRESHOLD
    Image.new("RGB", (40, 40)).save(tmp_path / "one.png")
    for bad in ("2", "0", "1", "-0.5"):
        with pytest.raises(UserError, match=f"Received: threshold={float(bad)}"):
            GAinfer.main(["--weights", str(runs["a"] / "model.onnx"), "--images", str(tmp_path),
                          "--threshold", bad])


def test_an_original_format_model_gets_statistics_and_calibration_fitted_after_the_fact(
        split_dir, tmp_path, capsys):
    """The original's files: a flat ResNet (its layers in the model's own graph), input
    preprocessed outside, no statistics. GAcalibrate.py fits both beside the file."""
    import GAcalibrate
    import tf_keras
    from gacrystal.cli import run_main
    backbone = tf_keras.applications.ResNet50(weights=None, include_top=False,
                                              input_shape=(32, 32, 3))
    x = tf_keras.layers.GlobalAveragePooling2D()(backbone.output)
    outputs = tf_keras.layers.Dense(1, activation="sigmoid")(x)
    tf_keras.Model(backbone.input, outputs).save(str(tmp_path / "GAweights.h5"), save_format="h5")
    assert run_main(GAcalibrate.main, ["--weights", str(tmp_path / "GAweights.h5"),
                                       "--images", str(split_dir / "train")]) == 0
    assert "temperature" in capsys.readouterr().out
    classifier = load_classifier(tmp_path / "GAweights.h5")
    assert classifier.card["preprocessing_inside"] is False and classifier.can_reject
    assert classifier.calibration is not None
    assert len(classifier.feature_sizes) == 6  # input, stem, three stages, the last stage
    flat = np.full((1, 32, 32, 3), 200, np.uint8)
    assert classifier.label(flat)[0]["label"] == "UNKNOWN"
