"""Writes an int8 copy of an ONNX classifier beside it, and measures its speed and agreement.

    python GAquantize.py --weights runs/RUN/model.onnx --data images/split
    python GAinfer.py --weights runs/RUN/model.int8.onnx --images FOLDER

ONNX Runtime's static quantization: weights and activations in int8 (QDQ format, weights per
channel), the activation ranges calibrated on a handful of training images. It then labels the
validation and test images with both models and prints the share of labels that agree and each
model's speed on this machine. The int8 model is an option, not the default: use it where its
measured agreement is good enough for you. It keeps the fp32 model's card (size, resize, classes),
but labels without the out-of-distribution check: its features differ too much from the fp32
ones that ood.npz was fitted on.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from GAcli import UserError, parse_settings, run_main

# --- settings (edit here, or override on the command line with the same names) ---
weights = "weights/model.onnx"  # the fp32 ONNX model this project wrote
data = "images/split"  # split folder: calibration from train/, agreement measured on val/ and test/
calibration_images = 64  # training images whose activation ranges set the int8 scales
overwrite = False  # replace an existing .int8.onnx
# --- end of settings


def int8_path(fp32: Path) -> Path:
    return fp32.with_name(fp32.name.removesuffix(".onnx") + ".int8.onnx")


def calibration_reader(input_name: str, batches: list[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(batches)

        def get_next(self):
            batch = next(self.remaining, None)
            return None if batch is None else {input_name: batch}
    return Reader()


def quantize(fp32: Path, calibration: np.ndarray, out: Path):
    """Static int8 quantization of fp32 into out, calibrated on RGB 0-255 images."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from GAfiles import atomic_path
    input_name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]) \
        .get_inputs()[0].name
    batches = [calibration[i:i + 8] for i in range(0, len(calibration), 8)]
    with atomic_path(out) as temporary:
        quantize_static(str(fp32), str(temporary), calibration_reader(input_name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = onnx.load(str(temporary))
        source = {p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props}
        del model.metadata_props[:]
        for key, value in source.items():
            entry = model.metadata_props.add()
            entry.key = key
            entry.value = value if key != "ga_model" else json.dumps(
                dict(json.loads(value), quantized="int8 (QDQ, per-channel weights)"))
        onnx.save(model, str(temporary))


def images_per_second(classifier, pixels: np.ndarray, batch=16, repeats=3) -> float:
    classifier.predict(pixels[:batch])  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(pixels), batch):
            classifier.predict(pixels[i:i + batch])
        times.append(time.perf_counter() - started)
    return len(pixels) / float(np.median(times))


def main(argv=None):
    s, _ = parse_settings(__file__, "Write an int8 ONNX model beside an fp32 one.", argv)
    from GAdata import list_split
    from GAimages import read_rgb
    from GAinfer import load_classifier
    fp32 = Path(s["weights"])
    if fp32.suffix.lower() != ".onnx" or not fp32.is_file():
        raise UserError(f"weights must be an .onnx file this project wrote. Received: {fp32}")
    out = int8_path(fp32)
    if out.exists() and not s["overwrite"]:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    reference = load_classifier(fp32)
    if not reference.card["preprocessing_inside"]:
        raise UserError(f"{fp32} is the original project's file; quantize a model trained here")
    size, resize = reference.image_size, reference.resize
    train_paths, _ = list_split(Path(s["data"], "train"))
    chosen = np.random.default_rng(0).permutation(len(train_paths))[:s["calibration_images"]]
    calibration = np.stack([read_rgb(train_paths[i], size, resize) for i in chosen]).astype(np.float32)
    started = time.time()
    quantize(fp32, calibration, out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.0f} MB, fp32 "
          f"{fp32.stat().st_size / 2**20:.0f} MB) in {time.time() - started:.0f} s")
    quantized = load_classifier(out)
    paths = sum((list_split(Path(s["data"], split))[0] for split in ("val", "test")), [])
    pixels = np.stack([read_rgb(p, size, resize) for p in paths]).astype(np.float32)
    p32, ood32 = reference.predict_and_score(pixels)
    p8, ood8 = quantized.predict_and_score(pixels)
    agree = float(np.mean((p32 >= 0.5) == (p8 >= 0.5)))
    print(f"labels agreeing with fp32 on {len(paths)} val+test images: {100 * agree:.2f}% "
          f"(largest P(PG) difference {np.abs(p32 - p8).max():.4f})")
    if ood32 is not None and ood8 is not None:
        same = float(np.mean((ood32 > 1) == (ood8 > 1)))
        print(f"UNKNOWN decisions agreeing: {100 * same:.2f}%")
    speed32, speed8 = images_per_second(reference, pixels), images_per_second(quantized, pixels)
    print(f"speed on tensors, batch 16: fp32 {speed32:.1f} images/s, int8 {speed8:.1f} images/s "
          f"({speed8 / speed32:.2f}x)")
    print(f"next: python GAinfer.py --weights {out} --images FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main))
