"""The original project's training epoch, rebuilt in Keras 2 (tf_keras) for the speed comparison
with ours in one run (bench/train.py --original). Not a copy of its code: the same recipe and
the same kind of pipeline, as its README and docs/original.md describe it.

- ImageDataGenerator with preprocess_input and the augmentation ranges (rotation 30, shifts 0.2,
  zoom 0.3, both flips, fill nearest), flow_from_directory at 224 px, batch 64, class_mode
  binary, decoding every file every epoch (no cache);
- ResNet-101 without its top, the last 10% of its layers trainable, GlobalAveragePooling, Dense
  512 relu, BatchNormalization, Dropout 0.4, Dense 256 relu, Dropout 0.3, Dense 1 sigmoid; SGD
  0.1 momentum 0.9, binary cross-entropy; float32;
- the validation images evaluated three times an epoch: fit's validation_data, then the F1
  callback and the classification report's callback, each a predict() over the generator.

    python bench/original.py --data SPLIT_FOLDER --epochs 3    # prints the JSON of the epochs
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def generators(data: str, image_size: int, batch_size: int):
    from tf_keras.applications.resnet import preprocess_input
    from tf_keras.preprocessing.image import ImageDataGenerator
    augmented = ImageDataGenerator(preprocessing_function=preprocess_input, rotation_range=30,
                                   width_shift_range=0.2, height_shift_range=0.2, zoom_range=0.3,
                                   horizontal_flip=True, vertical_flip=True, fill_mode="nearest")
    plain = ImageDataGenerator(preprocessing_function=preprocess_input)
    flow = dict(target_size=(image_size, image_size), batch_size=batch_size, class_mode="binary")
    return (augmented.flow_from_directory(os.path.join(data, "train"), seed=42, **flow),
            plain.flow_from_directory(os.path.join(data, "val"), shuffle=False, **flow))


def original_model(image_size: int, backbone: str = "ResNet101"):
    import tf_keras as k2
    base = getattr(k2.applications, backbone)(include_top=False, weights=None,
                                              input_shape=(image_size, image_size, 3))
    n_trainable = len(base.layers) // 10
    for layer in base.layers[:-n_trainable]:
        layer.trainable = False
    x = k2.layers.GlobalAveragePooling2D()(base.output)
    x = k2.layers.Dense(512, activation="relu")(x)
    x = k2.layers.BatchNormalization()(x)
    x = k2.layers.Dropout(0.4)(x)
    x = k2.layers.Dense(256, activation="relu")(x)
    x = k2.layers.Dropout(0.3)(x)
    outputs = k2.layers.Dense(1, activation="sigmoid")(x)
    model = k2.Model(base.input, outputs)
    model.compile(optimizer=k2.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def train(data: str, epochs: int, image_size: int = 224, batch_size: int = 64,
          backbone: str = "ResNet101") -> list[float]:
    """Seconds of each epoch, the three validation passes included."""
    import tf_keras as k2
    train_flow, val_flow = generators(data, image_size, batch_size)

    class ValidationTwice(k2.callbacks.Callback):  # the F1 callback and the report's callback
        def on_epoch_end(self, epoch, logs=None):
            for _ in range(2):
                self.model.predict(val_flow, verbose=0)

    class EpochSeconds(k2.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochSeconds()  # last: its epoch ends after the validation passes
    original_model(image_size, backbone).fit(
        train_flow, validation_data=val_flow, epochs=epochs, verbose=0,
        callbacks=[ValidationTwice(), timer])
    return timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a split folder (train/, val/)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--backbone", default="ResNet101")
    args = parser.parse_args()
    from common import peak_rss_mb
    seconds = train(args.data, args.epochs, args.image_size, args.batch_size, args.backbone)
    print(json.dumps({"epoch_seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main()
