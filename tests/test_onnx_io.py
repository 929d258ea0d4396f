"""gacrystal.onnx_io's engines: OpenVINO and ONNX Runtime give the same labels, P(PG) and UNKNOWN
decisions on one .onnx file (fp32 and its int8 copy), and "auto" picks what is installed."""
import shutil
import sys

import numpy as np
import pytest

from gacrystal import UserError, load_classifier, ood
from gacrystal.cli import run_main
from gacrystal.images import KAGGLE_SUBPATH, predicted_labels, read_rgb
from gacrystal.onnx_io import export_onnx
from gacrystal.quantize import int8_path, onnx_features, quantize

from foreign import foreign_images

SIZE = 32
# The tolerance held against ONNX Runtime: labels and UNKNOWN decisions agree on this share of the
# images, P(PG) within this difference (int8 engines round differently: one step of the
# activations' int8 scale can move it).
LABELS_AGREE, UNKNOWN_AGREE = 0.995, 0.99
P_PG_TOLERANCE = {"fp32": 1e-4, "int8": 0.02}


def tiny_scorer(pixels: np.ndarray, labels: list):
    """A scoring model shaped like gacrystal.model.scoring_model's: P(PG), and each stage's
    channel means and standard deviations (the features the OOD check reads); fitted a little on
    the crops, its bias set so that P(PG) falls on both sides of 0.5."""
    import keras
    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    features = []
    for filters in (8, 16):
        x = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(x)
        features += [keras.ops.mean(x, axis=(1, 2)), keras.ops.std(x, axis=(1, 2))]
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(1, activation="sigmoid")
    p_pg = head(pooled)
    classifier = keras.Model(inputs, p_pg)
    classifier.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    classifier.fit(pixels, np.array(labels, np.float32), epochs=5, batch_size=8, verbose=0)
    weights, bias = head.get_weights()
    logits = keras.Model(inputs, pooled).predict(pixels, verbose=0) @ weights + bias
    head.set_weights([weights, bias - np.median(logits)])
    return keras.Model(inputs, [p_pg, keras.layers.Concatenate()(features)]), [16, 32]


@pytest.fixture(scope="module")
def model_dir(synthetic_root, tmp_path_factory):
    """model.onnx with its card, model.int8.onnx (GAquantize's recipe), and each one's OOD
    statistics fitted on half of the synthetic crops (the other half: validation)."""
    folder = tmp_path_factory.mktemp("engines")
    paths = {name: sorted(str(p) for p in (synthetic_root / KAGGLE_SUBPATH / name).iterdir())
             for name in ("cex", "pg")}
    train = paths["cex"][:20] + paths["pg"][:20]
    labels = [0] * 20 + [1] * 20
    val = paths["cex"][20:30] + paths["pg"][20:30]
    scorer, sizes = tiny_scorer(np.stack([read_rgb(p, SIZE) for p in train]).astype(np.float32),
                                labels)
    card = {"backbone": "tiny", "image_size": SIZE, "resize": "bilinear",
            "class_names": ["CEX", "PG"]}
    export_onnx(scorer, folder / "model.onnx", card)
    quantize(folder / "model.onnx", train[::4], int8_path(folder / "model.onnx"), SIZE, "bilinear")
    for name, statistics in (("model.onnx", ood.file_for(card)),
                             ("model.int8.onnx", ood.file_for({"quantized": "int8"}))):
        stages, _ = ood.fit_statistics(onnx_features(folder / name, SIZE, "bilinear"), train,
                                       labels, val, sizes)
        ood.save(stages, folder / statistics)
    return folder


@pytest.fixture(scope="module")
def pixels(synthetic_root):
    """Crystal crops and foreign images (scenes, text, noise, ...) at the model's size: the two
    kinds the OOD check tells apart."""
    crops = [read_rgb(p, SIZE) for p in sorted(synthetic_root.rglob("*.png"))]
    foreign = [read_rgb(image, SIZE) for images in foreign_images(5, 64, seed=4).values()
               for image in images]
    return np.stack(crops + foreign).astype(np.float32)


def decisions(classifier, pixels) -> tuple[np.ndarray, np.ndarray]:
    """P(PG) and the UNKNOWN decision of each image, in batches of 16 and one short batch."""
    p_pg, scores = [], []
    for i in range(0, len(pixels), 16):
        p, s = classifier.predict_and_score(pixels[i:i + 16])
        p_pg.append(p)
        scores.append(s)
    return np.concatenate(p_pg), np.concatenate(scores) > 1


@pytest.mark.parametrize("file, precision", [("model.onnx", "fp32"), ("model.int8.onnx", "int8")])
def test_openvino_and_onnxruntime_agree(model_dir, pixels, file, precision):
    pytest.importorskip("openvino")
    reference = load_classifier(model_dir / file, engine="onnxruntime")
    openvino = load_classifier(model_dir / file, engine="openvino")
    assert (reference.engine, openvino.engine) == (f"onnxruntime {precision}",
                                                   f"openvino {precision}")
    assert openvino.card == reference.card and openvino.card["image_size"] == SIZE
    assert openvino.can_reject and reference.can_reject
    p_ort, unknown_ort = decisions(reference, pixels)
    p_ov, unknown_ov = decisions(openvino, pixels)
    # both labels and both decisions occur: the comparisons are real ones
    assert 0.05 < predicted_labels(p_ort).mean() < 0.95 and 0.05 < unknown_ort.mean() < 0.95
    assert np.mean(predicted_labels(p_ov) == predicted_labels(p_ort)) >= LABELS_AGREE
    assert np.mean(unknown_ov == unknown_ort) >= UNKNOWN_AGREE
    assert np.abs(p_ov - p_ort).max() <= P_PG_TOLERANCE[precision]


def test_any_batch_size_runs_and_bf16_is_asked_for(model_dir, pixels):
    """The batch dimension is dynamic on both engines. bf16 runs only where asked and the CPU
    has it; an int8 file keeps its float parts in fp32 even then."""
    openvino = pytest.importorskip("openvino")
    classifier = load_classifier(model_dir / "model.onnx", engine="openvino")
    whole = classifier.predict(pixels[:7])
    for n in (1, 3, 7):
        np.testing.assert_allclose(classifier.predict(pixels[:n]), whole[:n], atol=1e-6)
    has_bf16 = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    bf16 = load_classifier(model_dir / "model.onnx", engine="openvino-bf16")
    assert bf16.engine == ("openvino bf16" if has_bf16 else "openvino fp32")
    assert np.abs(bf16.predict(pixels[:7]) - whole).max() < 0.05
    assert load_classifier(model_dir / "model.int8.onnx",
                           engine="openvino-bf16").engine == "openvino int8"


def test_auto_picks_openvino_where_it_imports_else_onnxruntime(model_dir, monkeypatch):
    auto = load_classifier(model_dir / "model.onnx")
    try:
        import openvino  # noqa: F401
        assert auto.engine == "openvino fp32"
    except ImportError:
        assert auto.engine == "onnxruntime fp32"
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    assert load_classifier(model_dir / "model.onnx").engine == "onnxruntime fp32"
    with pytest.raises(UserError, match=r'^engine=openvino needs OpenVINO: pip install -e '
                                        r'"\.\[openvino\]", or pass --engine onnxruntime$'):
        load_classifier(model_dir / "model.onnx", engine="openvino")


def test_an_unknown_engine_is_a_one_line_error_naming_the_setting(model_dir, tmp_path, capsys):
    import GAinfer
    with pytest.raises(UserError, match=r"^engine must be one of auto, onnxruntime, openvino, "
                                        r"openvino-bf16\. Received: engine=tensorrt$"):
        load_classifier(model_dir / "model.onnx", engine="tensorrt")
    shutil.copyfile(model_dir / "model.onnx", tmp_path / "model.onnx")
    image = tmp_path / "images" / "a.png"
    image.parent.mkdir()
    from PIL import Image
    Image.new("RGB", (SIZE, SIZE)).save(image)
    assert run_main(GAinfer.main, ["--weights", str(tmp_path / "model.onnx"), "--images",
                                   str(image.parent), "--engine", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert "engine must be one of" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_infer_prints_the_engine_once(model_dir, tmp_path, capsys):
    import GAinfer
    image = tmp_path / "a.png"
    from PIL import Image
    Image.new("RGB", (SIZE, SIZE), (90, 90, 90)).save(image)
    assert GAinfer.main(["--weights", str(model_dir / "model.onnx"), "--images", str(image),
                         "--engine", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert out.count("on onnxruntime fp32") == 1
