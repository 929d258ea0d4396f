"""gacrystal.onnx_io: the lean ONNX export gives a self-contained file that computes what Keras computes."""
import json

import numpy as np
import pytest

from gacrystal.onnx_io import CARD_KEY, export_onnx


@pytest.fixture(scope="module")
def two_output_model():
    """Convolution, batch normalisation (moving statistics away from their defaults), dropout
    (whose random-seed state is a weight the graph never reads) and two outputs, like the scorer."""
    import keras
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    p = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dropout(0.4)(pooled))
    model = keras.Model(inputs, [p, pooled])
    model.compile("sgd", ["binary_crossentropy", "mse"])
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    model.fit(images, [np.arange(16) % 2, np.zeros((16, 8))], epochs=1, verbose=0)
    return model


def test_export_matches_keras_on_both_outputs_at_any_batch_size(two_output_model, tmp_path):
    import onnxruntime as ort
    export_onnx(two_output_model, tmp_path / "m.onnx", {"backbone": "test"})
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]  # the weights are inside
    for batch in (1, 5):
        x = np.random.default_rng(batch).uniform(0, 255, (batch, 32, 32, 3)).astype(np.float32)
        expected = two_output_model.predict(x, verbose=0)
        got = session.run(None, {"image": x})
        assert len(got) == 2
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_export_is_standard_onnx_with_its_card_and_batch_norm_folded(two_output_model, tmp_path):
    import onnx
    export_onnx(two_output_model, tmp_path / "m.onnx", {"backbone": "test", "image_size": 32})
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata[CARD_KEY]) == {"backbone": "test", "image_size": 32}
    operators = {n.op_type for n in model.graph.node}
    assert "Conv" in operators and not operators & {"BatchNormalization", "Sqrt", "Reciprocal"}
