"""Writes an int8 copy of an ONNX classifier beside it, and measures its speed and agreement.

    python GAquantize.py --weights runs/RUN/model.onnx --data images/split
    python GAinfer.py --weights runs/RUN/model.int8.onnx --images FOLDER

ONNX Runtime's static quantization: weights and activations in int8 (QDQ format, weights per
channel), the activation ranges calibrated on a handful of training images. It then labels the
validation and test images with both models and prints the share of labels that agree and each
model's speed on this machine. The int8 model is an option, not the default: use it where its
measured agreement is good enough for you. It keeps the fp32 model's card (size, resize, classes)
and gets its own out-of-distribution statistics (ood.int8.npz, fitted on its own features as
training fits ood.npz), so it rejects foreign images too.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from GAcli import UserError, parse_settings, quiet_logger, run_main
from GAonnx import CARD_KEY

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


def prediction_nodes(model) -> set[str]:
    """Names of the nodes the first output, P(PG), depends on."""
    producer = {name: node for node in model.graph.node for name in node.output}
    needed, pending = set(), [model.graph.output[0].name]
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.name not in needed:
            needed.add(node.name)
            pending.extend(node.input)
    return needed


def quantize(fp32: Path, calibration: np.ndarray, out: Path):
    """Static int8 quantization of fp32 into out, calibrated on RGB 0-255 images.

    Only the network that computes P(PG) is quantized. The nodes that turn its activations into
    the out-of-distribution features (spatial means, standard deviations) stay float: quantized,
    they put the demo model's held-out crystal images 500 times further from the training images
    than fp32 does (measured), and they cost little."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from GAfiles import atomic_path
    input_name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]) \
        .get_inputs()[0].name
    source = onnx.load(str(fp32))
    keep_float = sorted({n.name for n in source.graph.node} - prediction_nodes(source))
    batches = [calibration[i:i + 8] for i in range(0, len(calibration), 8)]
    # quiet: quantize_static advises (on the root logger) running ONNX Runtime's optimisations
    # first, which our .onnx files had when they were exported (GAonnx)
    with atomic_path(out) as temporary, quiet_logger():
        quantize_static(str(fp32), str(temporary), calibration_reader(input_name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=keep_float)
        model = onnx.load(str(temporary))
        del model.metadata_props[:]
        for entry in source.metadata_props:
            value = entry.value if entry.key != CARD_KEY else json.dumps(
                dict(json.loads(entry.value), quantized="int8 (QDQ, per-channel weights)"))
            model.metadata_props.add(key=entry.key, value=value)
        onnx.save(model, str(temporary))


def image_batches(paths: list, size: int, resize: str, batch: int = 32):
    """The images as float32 RGB 0-255 batches, read as they are needed."""
    from GAimages import read_rgb
    for i in range(0, len(paths), batch):
        yield np.stack([read_rgb(p, size, resize) for p in paths[i:i + batch]]).astype(np.float32)


def features(model_path: Path, paths: list, size: int, resize: str) -> np.ndarray:
    """The out-of-distribution features (the model's second output) of the images."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x})[1]
                           for x in image_batches(paths, size, resize)])


def fit_int8_ood(int8: Path, fp32_stages: list[dict], data: Path, size: int, resize: str):
    """Fits the int8 model's own out-of-distribution statistics (ood.int8.npz), as training fits
    the fp32 model's: on up to GAood.FIT_IMAGES training images, calibrated on images they were
    not fitted on."""
    import GAood
    from GAdata import list_split
    train_paths, train_labels = list_split(data / "train")
    chosen = GAood.fitting_indices(len(train_paths), seed=0)
    val_paths, _ = list_split(data / "val")
    print(f"fitting the int8 model's out-of-distribution check on {len(chosen)} training and "
          f"{len(val_paths)} validation images ...")
    stages = GAood.fit(features(int8, [train_paths[i] for i in chosen], size, resize),
                       np.asarray(train_labels)[chosen],
                       features(int8, val_paths, size, resize), GAood.stage_sizes(fp32_stages))
    GAood.save(stages, int8.parent / GAood.INT8_FILE_NAME)
    print(f"wrote {int8.parent / GAood.INT8_FILE_NAME} (fitted on {len(chosen)} training images)")


def p_pg_and_ood_scores(classifier, paths: list) -> tuple[np.ndarray, np.ndarray | None]:
    records = [r for r in classifier.label(paths, reject=False) if r["p_pg"] is not None]
    scores = np.array([r["ood_score"] for r in records]) if classifier.can_reject else None
    return np.array([r["p_pg"] for r in records]), scores


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
    fp32, data = Path(s["weights"]), Path(s["data"])
    if fp32.suffix.lower() != ".onnx" or not fp32.is_file():
        raise UserError(f"weights must be an .onnx file this project wrote. Received: {fp32}")
    out = int8_path(fp32)
    if out.exists() and not s["overwrite"]:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    reference = load_classifier(fp32)
    if not reference.card["preprocessing_inside"]:
        raise UserError(f"{fp32} is the original project's file; quantize a model trained here")
    size, resize = reference.image_size, reference.resize
    train_paths, _ = list_split(data / "train")
    chosen = np.random.default_rng(0).permutation(len(train_paths))[:s["calibration_images"]]
    calibration = np.stack([read_rgb(train_paths[i], size, resize) for i in chosen]).astype(np.float32)
    started = time.time()
    quantize(fp32, calibration, out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.0f} MB, fp32 "
          f"{fp32.stat().st_size / 2**20:.0f} MB) in {time.time() - started:.0f} s")
    if reference.can_reject:
        fit_int8_ood(out, reference.ood_stages, data, size, resize)
    quantized = load_classifier(out)
    paths = sum((list_split(data / split)[0] for split in ("val", "test")), [])
    p32, ood32 = p_pg_and_ood_scores(reference, paths)
    p8, ood8 = p_pg_and_ood_scores(quantized, paths)
    agree = float(np.mean((p32 >= 0.5) == (p8 >= 0.5)))
    print(f"labels agreeing with fp32 on {len(paths)} val+test images: {100 * agree:.2f}% "
          f"(largest P(PG) difference {np.abs(p32 - p8).max():.4f})")
    if ood32 is not None and ood8 is not None:
        same = float(np.mean((ood32 > 1) == (ood8 > 1)))
        print(f"UNKNOWN decisions agreeing: {100 * same:.2f}% (fp32 rejects "
              f"{100 * np.mean(ood32 > 1):.1f}%, int8 {100 * np.mean(ood8 > 1):.1f}%)")
    pixels = next(image_batches(paths, size, resize, batch=256))
    speed32, speed8 = images_per_second(reference, pixels), images_per_second(quantized, pixels)
    print(f"speed on {len(pixels)} images in memory, batch 16: fp32 {speed32:.1f} images/s, "
          f"int8 {speed8:.1f} images/s ({speed8 / speed32:.2f}x)")
    print(f"next: python GAinfer.py --weights {out} --images FOLDER")


if __name__ == "__main__":
    sys.exit(run_main(main))
