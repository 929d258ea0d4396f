"""Writes an int8 copy of an ONNX classifier beside it, and measures its speed and agreement.

    python GAquantize.py                      # weights/model.onnx, on the split it was trained on
    python GAquantize.py --weights runs/RUN --data images/split    # the run folder's model.onnx
    python GAinfer.py --weights runs/RUN/model.int8.onnx --images FOLDER

ONNX Runtime's static quantization (weights and activations in int8, the activation ranges
calibrated on a handful of training images; see gacrystal/quantize.py). It then labels the
validation and test images with both models and prints the share of labels that agree and each
model's speed on this machine, on the engine --engine chooses (OpenVINO where installed, else ONNX
Runtime; it says which). The int8 model is an option, not the default: use it where its
measured agreement is good enough for you. It keeps the fp32 model's card (size, resize, classes)
and gets its own out-of-distribution statistics (ood.int8.npz, fitted on its own features with
the recipe training uses), so it rejects foreign images too.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from gacrystal import ood
from gacrystal.classifier import load_classifier, model_file, training_data_of
from gacrystal.cli import parse_settings, run_main
from gacrystal.errors import UserError
from gacrystal.files import OOD_INT8_NPZ
from gacrystal.images import read_stack
from gacrystal.onnx_io import check_engine
from gacrystal.quantize import (agreement, calibration_paths, fit_int8_ood, images_per_second,
                                int8_path, quantize)

# --- settings (edit here, or override on the command line with the same names) ---
weights = "weights/model.onnx"  # the fp32 ONNX model this project wrote, or its run folder (its model.onnx)
data = ""  # split folder: calibration from train/, agreement on val/ and test/; empty: the one the model was trained on
calibration_images = 64  # training images whose activation ranges set the int8 scales
overwrite = False  # replace an existing .int8.onnx
engine = "auto"  # what runs both files for the agreement and speed check: auto (OpenVINO where installed, else ONNX Runtime), onnxruntime, openvino, openvino-bf16
# --- end of settings

GOOD_AGREEMENT = 0.99  # below this share of labels agreeing with fp32, the int8 file is not offered


def check_settings(s: dict) -> tuple[Path, Path, Path]:
    """Checks the settings; returns the fp32 model, the split and the int8 file to write."""
    from gacrystal.dataset.split_folder import check_split_folder
    fp32 = Path(s["weights"])
    if not fp32.exists():
        raise UserError(f"no model file at weights={fp32}; train one with `python GAmain.py` "
                        f"(or `python GAmain.py --demo`, which puts a small one into weights/) "
                        f"and pass its run folder or its model.onnx")
    if not fp32.is_dir() and fp32.suffix.lower() != ".onnx":
        raise UserError(f"weights must be an .onnx file this project wrote (model.onnx in a run "
                        f"folder, or weights/model.onnx), or its folder. Received: {fp32}")
    fp32 = model_file(fp32, kind=".onnx")  # a folder: its model.onnx (classifier.folder_model)
    check_engine(s["engine"])
    if s["calibration_images"] < 1:
        raise UserError(f"calibration_images must be at least 1. "
                        f"Received: calibration_images={s['calibration_images']}")
    data = s["data"] or training_data_of(fp32)
    if not data:
        raise UserError(f"no config.json beside {fp32} names the split it was trained on; pass "
                        "--data SPLIT (a split folder with train/, val/ and test/)")
    check_split_folder(data)
    if not s["data"]:
        print(f"data: {data} (the split {fp32.name} was trained on, as its config.json says)")
    out = int8_path(fp32)
    if out.exists() and not s["overwrite"]:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    return fp32, Path(data), out


def print_agreement(result: dict):
    print(f"labels agreeing with fp32 on {result['images']} val+test images: "
          f"{100 * result['labels_agree']:.2f}% (largest P(PG) difference "
          f"{result['largest_p_pg_difference']:.4f})")
    if "unknown_agree" in result:
        print(f"UNKNOWN decisions agreeing: {100 * result['unknown_agree']:.2f}% (fp32 rejects "
              f"{100 * result['fp32_rejects']:.1f}%, int8 {100 * result['int8_rejects']:.1f}%)")


def what_next(labels_agree: float, fp32: Path, out: Path) -> str:
    """The int8 file is offered only where it agrees with fp32 on GOOD_AGREEMENT of the labels."""
    if labels_agree < GOOD_AGREEMENT:
        return (f"warning: the int8 model changes {100 * (1 - labels_agree):.1f}% of the labels; "
                f"keep labelling with {fp32}, or quantize again with more --calibration_images "
                f"and compare")
    return f"next: python GAinfer.py --weights {out} --images FOLDER"


def main(argv=None):
    s, _ = parse_settings(__file__, "Write an int8 ONNX model beside an fp32 one.", argv)
    fp32, data, out = check_settings(s)
    from gacrystal.dataset.split_folder import list_split
    reference = load_classifier(fp32, engine=s["engine"])
    if not reference.card["preprocessing_inside"]:
        raise UserError(f"{fp32} is the original project's file; quantize a model trained here")
    size, resize = reference.image_size, reference.resize
    train_paths, train_labels = list_split(data / "train")
    val_paths, _ = list_split(data / "val")
    started = time.time()
    quantize(fp32, calibration_paths(train_paths, s["calibration_images"]), out, size, resize)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.0f} MB, fp32 "
          f"{fp32.stat().st_size / 2**20:.0f} MB) in {time.time() - started:.0f} s")
    if reference.can_reject:
        print(f"fitting the int8 model's out-of-distribution check on the training and "
              f"{len(val_paths)} validation images ...")
        fitted = fit_int8_ood(out, ood.stage_sizes(reference.ood_stages), train_paths,
                              train_labels, val_paths, size, resize)
        print(f"wrote {out.parent / OOD_INT8_NPZ} (fitted on {fitted['fit_images']} "
              "training images)")
    quantized = load_classifier(out, engine=s["engine"])
    paths = val_paths + list_split(data / "test")[0]
    result = agreement(reference, quantized, paths)
    print_agreement(result)
    pixels = next(read_stack(paths, size, resize, batch_size=256))
    speed32, speed8 = images_per_second(reference, pixels), images_per_second(quantized, pixels)
    print(f"speed on {len(pixels)} images in memory, batch 16: {reference.engine} "
          f"{speed32:.1f} images/s, {quantized.engine} {speed8:.1f} images/s "
          f"({speed8 / speed32:.2f}x)")
    line = what_next(result["labels_agree"], fp32, out)
    print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)


if __name__ == "__main__":
    sys.exit(run_main(main))
