"""gacrystal/classifier.py, the Python API: loading a model (this project's .keras and .onnx,
the original project's .h5 and .onnx, a folder as weights, files that cannot be loaded), and
Classifier.label / predict / record: what a record says, on paths, PIL images and arrays, in
batches, from Keras and from ONNX. The scripts that use it: test_infer.py (GAinfer.py),
test_quantize.py, test_gamonitor.py."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gacrystal import load_classifier
from gacrystal.classifier import model_file
from gacrystal.errors import UserError
from gacrystal.images import read_rgb
from conftest import ROOT


@pytest.fixture(scope="module")
def test_images(split_dir):
    return [str(p) for p in sorted((split_dir / "test").rglob("*.png"))] + \
           [str(p) for p in sorted((split_dir / "val").rglob("*.png"))][:10]


def brightness_model(tmp_path, image_size=16):
    """A model whose output is known: P(PG) = sigmoid((mean red level - 128) / 8).

    Its first layer is named like this project's preprocessing layer (and is the identity), so
    it is read as one of our models: raw pixels in.
    """
    import keras
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(3, 1, name="preprocess_identity", trainable=False,
                            kernel_initializer=keras.initializers.Constant(np.eye(3)[None, None]),
                            bias_initializer="zeros")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid",
                                 kernel_initializer=keras.initializers.Constant([[1 / 8], [0], [0]]),
                                 bias_initializer=keras.initializers.Constant(-16.0))(x)
    path = tmp_path / "brightness.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_label_and_confidence_follow_p_pg(tmp_path):
    classifier = load_classifier(brightness_model(tmp_path))
    levels = np.array([0, 120, 128, 136, 255], np.float32)
    batch = np.ones((5, 16, 16, 3), np.float32) * levels[:, None, None, None]
    records = classifier.label(batch)
    expected_p = 1 / (1 + np.exp(-(levels - 128) / 8))
    for r, p in zip(records, expected_p):
        assert r["p_pg"] == pytest.approx(p, abs=1e-5)
        assert r["label"] == ("PG" if p >= 0.5 else "CEX")
        assert r["confidence"] == pytest.approx(p if p >= 0.5 else 1 - p, abs=1e-5)
    assert [r["label"] for r in records] == ["CEX", "CEX", "PG", "PG", "PG"]
    assert records[0]["confidence"] > 0.99  # a dark image is confidently CEX, not "PG 1.0000"


def test_unknown_has_no_confidence_and_the_summary_says_what_it_means(tmp_path):
    from gacrystal.labelling.folder import format_table, summary
    classifier = load_classifier(brightness_model(tmp_path))
    foreign = classifier.record("text.png", 0.9999, ood_score=4.2)
    crystal = classifier.record("crop.png", 0.9999, ood_score=0.3)
    assert foreign["label"] == "UNKNOWN" and foreign["confidence"] is None
    assert foreign["p_pg"] == pytest.approx(crystal["p_pg"])  # P(PG) is still given
    assert crystal["label"] == "PG" and crystal["confidence"] > 0.99
    row = format_table([foreign, crystal]).splitlines()[1]
    assert "UNKNOWN" in row and "0.9999" in row.split("UNKNOWN")[1][:12]  # P(PG)
    assert row.count("0.9999") == 1  # and no confidence beside it
    text = summary([foreign, crystal])
    assert "1 UNKNOWN" in text and "unlike the model's training crops" in text
    assert "UNKNOWN:" not in summary([crystal])
    assert "Look at them on out/review.html" in summary([foreign], review="out")


def test_predict_refuses_another_size_where_label_resizes(tmp_path):
    classifier = load_classifier(brightness_model(tmp_path))  # 16 px
    crop = np.full((1, 16, 16, 3), 140, np.float32)
    p_pg = 1 / (1 + np.exp(-12 / 8))  # the brightness model at level 140
    assert classifier.predict(crop).ravel()[0] == pytest.approx(p_pg, abs=1e-5)
    with pytest.raises(UserError, match=r"shape \(n, 16, 16, 3\). Received: \(1, 32, 32, 3\)"):
        classifier.predict(np.full((1, 32, 32, 3), 140, np.float32))
    with pytest.raises(UserError, match="label\\(\\) resizes"):
        classifier.predict(crop[0])  # one image, not a batch
    assert classifier.label(np.full((32, 32, 3), 140, np.float32))[0]["label"] == "PG"


def test_only_a_model_trained_on_synthetic_crops_gets_the_note():
    from gacrystal.classifier import synthetic_only_note
    assert "--weights georgia" in synthetic_only_note({"trained_on": "synthetic"})
    assert synthetic_only_note({"trained_on": "labelled images"}) is None
    assert synthetic_only_note({"origin": "original project"}) is None


def test_batches_give_the_same_numbers_as_single_images(runs, test_images):
    files = test_images[:11]  # batches of 4, 4 and 3: the last is padded to 4 for Keras
    batched = load_classifier(runs["a"] / "model.keras").label(files, batch_size=4)
    one_by_one = load_classifier(runs["a"] / "model.keras")
    single = [one_by_one.label([f])[0] for f in files[:3] + files[-3:]]
    assert len(batched) == 11
    for b, s in zip(batched[:3] + batched[-3:], single):
        assert b["file"] == s["file"] and b["p_pg"] == pytest.approx(s["p_pg"], abs=1e-5)
        assert b["ood_score"] == pytest.approx(s["ood_score"], rel=1e-4)


def test_paths_pil_images_and_arrays_give_the_same_answer(runs, test_images):
    classifier = load_classifier(runs["a"] / "model.keras")
    files = test_images[:3]
    from_paths = [r["p_pg"] for r in classifier.label(files)]
    from_pil = [r["p_pg"] for r in classifier.label([Image.open(f) for f in files])]
    from_array = [r["p_pg"] for r in classifier.label(np.stack([read_rgb(f, 32) for f in files]))]
    np.testing.assert_allclose(from_pil, from_paths, atol=1e-6)
    np.testing.assert_allclose(from_array, from_paths, atol=1e-6)


def test_keras_and_onnx_paths_agree(runs, test_images):
    on_keras = load_classifier(runs["a"] / "model.keras").label(test_images)
    on_onnx = load_classifier(runs["a"] / "model.onnx").label(test_images)
    # Not bit-equal: TensorFlow's oneDNN kernels and ONNX Runtime's sum in other orders through
    # 101 layers, and which kernels run depends on the CPU (AVX-512 machines agreed to 1e-4; an
    # AVX2-only EPYC differed by 6e-4 on one image of this barely trained model).
    np.testing.assert_allclose([r["p_pg"] for r in on_onnx], [r["p_pg"] for r in on_keras],
                               atol=2e-3)
    assert [r["label"] for r in on_onnx] == [r["label"] for r in on_keras]


@pytest.mark.parametrize("api", ["from gacrystal import load_classifier",
                                 "from GAinfer import load_classifier"])  # the README's, before
def test_onnx_card_is_embedded_and_tensorflow_is_never_imported(runs, test_images, api):
    code = (f"import sys; {api}; c = load_classifier(sys.argv[1]); "
            "r = c.label(sys.argv[2:]); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(c.card['image_size'], c.card['preprocessing_inside'], r[0]['label'])")
    result = subprocess.run([sys.executable, "-c", code, str(runs["a"] / "model.onnx"),
                             *test_images[:2]], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    size, inside, label = result.stdout.split()
    assert size == "32" and inside == "True" and label in ("CEX", "PG")


def original_format_files(tmp_path, project_model):
    """The original project's two formats, holding project_model's weights without its
    preprocessing layer: a Keras 2 full-model .h5 (written by tf_keras, as Keras 2.10 did) and a
    plain ONNX export whose input is already preprocessed (no model card)."""
    import keras
    import tf_keras
    layers = [l for l in project_model.layers[1:] if not l.name.startswith("preprocess_")]
    inputs = tf_keras.Input(project_model.input_shape[1:])
    x = tf_keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf_keras.layers.Dense(1, activation="sigmoid")(x)
    keras2 = tf_keras.Model(inputs, outputs)
    keras2.set_weights(layers[0].get_weights() + layers[2].get_weights())
    keras2.save(str(tmp_path / "GAweights.h5"), save_format="h5")
    keras3 = keras.Sequential([keras.Input(project_model.input_shape[1:])] + layers)
    keras3(np.zeros((1, *project_model.input_shape[1:]), np.float32))  # export needs a called model
    keras3.export(str(tmp_path / "GAweights.onnx"), format="onnx", verbose=False)
    return tmp_path / "GAweights.h5", tmp_path / "GAweights.onnx"


def small_project_model(tmp_path):
    import keras
    from gacrystal.model import preprocessing_layer
    keras.utils.set_random_seed(5)
    inputs = keras.Input((32, 32, 3))
    x = preprocessing_layer("caffe")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid",
                                 bias_initializer=keras.initializers.Constant(0.3))(x)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "project.keras")
    return model


def test_original_h5_and_onnx_give_the_project_models_labels(tmp_path, test_images):
    project = small_project_model(tmp_path)
    h5, onnx_file = original_format_files(tmp_path, project)
    # Arrays at the model's size skip resizing: nearest (original) and bilinear (ours) see the same.
    pixels = np.stack([read_rgb(f, 32) for f in test_images])
    reference = load_classifier(tmp_path / "project.keras").label(pixels)
    for path in (h5, onnx_file):
        classifier = load_classifier(path)
        assert classifier.card["preprocessing_inside"] is False
        assert classifier.card["resize"] == "nearest"
        records = classifier.label(pixels)
        np.testing.assert_allclose([r["p_pg"] for r in records],
                                   [r["p_pg"] for r in reference], atol=1e-4)
        assert [r["label"] for r in records] == [r["label"] for r in reference]


def test_a_folder_as_weights_names_the_model_files_inside(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match=r"is a folder; it holds no model file"):
        load_classifier(run)
    for name in ("model.keras", "model.onnx", "config.json"):
        (run / name).write_bytes(b"")
    with pytest.raises(UserError, match=r"is a folder; pass one of its model files, e\.g\. "
                                        r".*model\.keras \(model\.keras, model\.onnx\)$"):
        load_classifier(run)
    # Where a script takes one kind of model file (GAquantize.py: .onnx), the folder stands for
    # its model file of that kind; the others name the files, as above.
    assert model_file(run, kind=".onnx") == run / "model.onnx"
    with pytest.raises(UserError, match=r"is a folder with no model\.h5 \(it holds model\.keras, "
                                        r"model\.onnx\); pass a run folder that has one"):
        model_file(run, kind=".h5")


def test_files_that_cannot_be_loaded_say_why(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_text("x")
    with pytest.raises(UserError, match="unknown model format"):
        load_classifier(bogus)
    bad = tmp_path / "broken.keras"
    bad.write_text("not a zip")
    with pytest.raises(UserError, match="could not load"):
        load_classifier(bad)
    import h5py
    whole = tmp_path / "whole.h5"
    with h5py.File(whole, "w") as f:
        f.create_dataset("weights", data=np.zeros(100_000))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(whole.read_bytes()[:400_000])  # an interrupted download
    with pytest.raises(UserError, match=r"cut short \(400,000 of its [\d,]+ bytes\).*copy it again"):
        load_classifier(cut)
