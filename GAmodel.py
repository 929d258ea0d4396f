"""The network: a ResNet backbone, the original project's head, preprocessing inside the model.

    python GAmodel.py                           # prints the default model's layers and sizes
    python GAmodel.py --backbone ResNet50 --image_size 64
    python GAmodel.py --weights weights/model.keras   # a trained model: its layers and its card

The code is in gacrystal/model.py (this file is the design card's name for it, and re-exports it):

    from gacrystal.model import build_classifier
    model = build_classifier("ResNet101", weights="imagenet", image_size=224)
    p_pg = model.predict(rgb_uint8_batch)[:, 0]      # raw RGB 0-255 in, P(PG) out
"""
from __future__ import annotations

import sys

from gacrystal.cli import parse_settings, run_main
from gacrystal.model import (BACKBONES, build_classifier, check_backbone,  # noqa: F401
                             model_card, preprocessing_layer, scoring_model)

# --- settings (edit here, or override on the command line with the same names) ---
backbone = "ResNet101"  # ResNet50, ResNet101, ResNet152, ResNet50V2/101V2/152V2, ResNet18 (keras-hub)
image_size = 224  # model input side in pixels
trainable_fraction = 0.1  # share of backbone layers, counted from the end, that train (original 0.1)
weights = ""  # a model file or published weights by name: print that model (and its card) instead
# --- end of settings


def main(argv=None):
    s, _ = parse_settings(__file__, "Print the classifier's layers and parameter counts.", argv)
    if s["weights"]:
        return print_trained(s["weights"])
    check_backbone(s["backbone"])
    # No weights: the layout is the same, and nothing is downloaded.
    model = build_classifier(s["backbone"], None, s["image_size"], s["trainable_fraction"])
    model.summary(expand_nested=False)
    print("input: RGB 0-255, preprocessing inside the model; output: P(PG) (CEX = 0, PG = 1)")


def print_trained(weights: str):
    """A trained model's layers (a .keras or .h5 file) and its card: what it was built and
    trained with, from config.json or the ONNX file's metadata."""
    from gacrystal.classifier import load_classifier, model_file
    path = model_file(weights)
    classifier = load_classifier(path)
    if classifier.model is not None:
        classifier.model.summary(expand_nested=False)
    for name, value in classifier.card.items():
        if not isinstance(value, (dict, list)) or name == "class_names":
            print(f"{name}: {value}")


if __name__ == "__main__":
    sys.exit(run_main(main))
