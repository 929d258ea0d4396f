"""The classifier: structure, preprocessing inside the model, and where its weights come from."""
import numpy as np
import pytest
import keras

from gacrystal.errors import UserError
from gacrystal.model import backbone_of, build_backbone, build_classifier, preprocessing_layer


@pytest.fixture(scope="module")
def resnet101():
    return build_classifier("ResNet101", weights=None, image_size=32)


def test_last_tenth_of_backbone_layers_train_the_rest_are_frozen(resnet101):
    backbone = backbone_of(resnet101)
    flags = [layer.trainable for layer in backbone.layers]
    assert len(flags) == 345
    assert flags == [False] * (345 - 34) + [True] * 34  # count // 10, as the original


def test_head_is_the_originals(resnet101):
    head = resnet101.layers[3:]
    assert [type(layer).__name__ for layer in head] == [
        "GlobalAveragePooling2D", "Dense", "BatchNormalization", "Dropout", "Dense", "Dropout",
        "Dense"]
    assert [head[1].units, head[4].units, head[6].units] == [512, 256, 1]
    assert [head[3].rate, head[5].rate] == [0.4, 0.3]
    assert head[6].activation is keras.activations.sigmoid
    assert resnet101.output_shape == (None, 1)


def test_output_is_a_probability_per_image(resnet101):
    p = resnet101.predict(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)), verbose=0)
    assert p.shape == (3, 1) and ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("mode, reference", [
    ("caffe", keras.applications.resnet.preprocess_input),
    ("tf", keras.applications.resnet_v2.preprocess_input),
])
def test_preprocessing_layer_equals_keras_preprocess_input(mode, reference):
    rgb = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    inside = np.asarray(preprocessing_layer(mode)(rgb))
    np.testing.assert_allclose(inside, reference(rgb.copy()), atol=1e-4)


def test_model_takes_raw_pixels_and_preprocesses_itself(resnet101):
    rgb = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    features = keras.Model(resnet101.input, resnet101.get_layer("avg_pool").input)
    direct = backbone_of(resnet101).predict(keras.applications.resnet.preprocess_input(rgb.copy()),
                                            verbose=0)
    np.testing.assert_allclose(features.predict(rgb, verbose=0), direct, rtol=1e-4, atol=1e-4)


def test_weights_load_from_a_local_keras_cache_style_file(tmp_path):
    import tf_keras  # Keras 2 writes the same legacy .h5 format as Keras's cached ImageNet files
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    keras2 = tf_keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    keras2.save_weights(str(path))
    loaded = build_backbone("ResNet50", str(path), 32)
    for expected, actual in zip(keras2.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(expected, actual)


def test_failed_imagenet_download_says_how_to_fix_it(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: network is unreachable")
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(UserError, match="(?s)could not download.*notop.h5.*--weights none"):
        build_backbone("ResNet101", "imagenet", 32)


def test_missing_weights_file_and_unknown_backbone_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no weights file"):
        build_backbone("ResNet50", str(tmp_path / "missing.h5"), 32)
    with pytest.raises(UserError, match="Received: backbone=ResNet99"):
        build_backbone("ResNet99", None, 32)


def test_resnet18_without_keras_hub_names_the_package():
    try:
        import keras_hub  # noqa: F401
        pytest.skip("keras-hub is installed; this checks the message shown without it")
    except ImportError:
        pass
    with pytest.raises(UserError, match="pip install keras-hub"):
        build_backbone("ResNet18", None, 32)


def test_batchnorm_momentum_is_a_setting_and_keras_default_otherwise(resnet101):
    def momenta(model):
        return {layer.momentum for layer in backbone_of(model).layers
                if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta(resnet101) == {0.99}
    assert momenta(build_classifier("ResNet50", None, 32, bn_momentum=0.9)) == {0.9}
    assert resnet101.get_layer("fc512_bn").momentum == 0.99


@pytest.mark.parametrize("momentum, lags", [(0.99, True), (0.6, False)])
def test_after_an_epoch_of_nine_steps_the_heads_statistics_lag_only_at_kerass_momentum(
        momentum, lags):
    """The demo's trap: its head's new BatchNorm starts at mean 0 and variance 1; after an epoch
    of 9 steps at 0.99 its moving mean is still a small share of what it normalizes (validation
    near chance), at the demo's 0.6 it has caught up."""
    keras.utils.set_random_seed(1)
    model = build_classifier("ResNet50", None, 32, trainable_fraction=0.0, bn_momentum=momentum)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (72, 32, 32, 3)).astype(np.float32)
    model.fit(x, np.zeros(72), batch_size=8, epochs=1, verbose=0)  # 9 steps
    inputs = keras.Model(model.inputs, model.get_layer("fc512").output).predict(x, verbose=0)
    moving = np.asarray(model.get_layer("fc512_bn").moving_mean)
    share = np.abs(moving).sum() / np.abs(inputs.mean(axis=0)).sum()
    assert (share < 0.2) if lags else (share > 0.9)


def test_gamodel_prints_a_trained_models_layers_and_card(tmp_path, capsys):
    """GAmodel.py --weights: the model a user has, not the settings block's ResNet-101."""
    import json
    import GAmodel
    from gacrystal.cli import run_main
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(3, 1, name="preprocess_identity")(inputs)  # read as one of ours
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="p_pg")(x)).save(
        tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps({"model": {"backbone": "ResNet50",
                                                                "image_size": 16}}))
    assert run_main(GAmodel.main, ["--weights", str(tmp_path / "model.keras")]) == 0
    out = capsys.readouterr().out
    assert "p_pg" in out and "backbone: ResNet50" in out and "image_size: 16" in out
    assert run_main(GAmodel.main, ["--weights", str(tmp_path / "none.keras")]) == 2
    assert "no model file at weights=" in capsys.readouterr().err
