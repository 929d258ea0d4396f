"""An int8 copy of an ONNX classifier, its own out-of-distribution statistics, and how well it
agrees with the fp32 model (GAquantize.py runs these in order).

ONNX Runtime's static quantization: the convolutions' weights and inputs in int8 (QDQ format,
weights per channel), the activation ranges calibrated on a handful of training images. Only the
backbone's convolutions that P(PG) depends on are quantized: the head (three small dense layers)
and the nodes that turn the activations into the out-of-distribution features stay float.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from gacrystal import ood
from gacrystal.cli import quiet_logger
from gacrystal.errors import UserError
from gacrystal.files import OOD_INT8_NPZ
from gacrystal.images import predicted_labels, read_batches, read_stack
from gacrystal.onnx_io import CARD_KEY, open_session

QUANTIZED = "int8 (QDQ, per-channel weights)"  # the model card's "quantized" entry
CALIBRATION_SEED = 0


def int8_path(fp32: Path) -> Path:
    return fp32.with_name(fp32.name.removesuffix(".onnx") + ".int8.onnx")


def calibration_reader(input_name: str, batches):
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


def calibration_paths(train_paths: list, count: int) -> list:
    """The training images whose activation ranges set the int8 scales."""
    chosen = np.random.default_rng(CALIBRATION_SEED).permutation(len(train_paths))[:count]
    return [train_paths[i] for i in chosen]


def quantize(fp32: Path, calibration_images: list, out: Path, image_size: int, resize: str):
    """Static int8 quantization of fp32 into out, calibrated on the given image files.

    Only the convolutions that compute P(PG) are quantized, where nearly all the time goes. The
    nodes that turn their activations into the out-of-distribution features (spatial means,
    standard deviations) stay float: quantized, they put the demo model's held-out crystal images
    500 times further from the training images than fp32 does (measured), and they cost little.
    The head stays float too: with its dense layers, BatchNorm and residual additions quantized,
    the demo model of 2026-12-03 squeezed P(PG) into 0.07-0.53 and agreed with fp32 on 75.5% of
    241 labels (its dense layers alone: 48.6%); with the convolutions alone, 99.6%, as fast
    (bench/RESULTS.md)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from gacrystal.files import atomic_path
    input_name = open_session(fp32).get_inputs()[0].name
    source = onnx.load(str(fp32))
    keep_float = sorted({n.name for n in source.graph.node} - prediction_nodes(source))
    batches = read_stack(calibration_images, image_size, resize, batch_size=8)
    # quiet: quantize_static advises (on the root logger) running ONNX Runtime's optimisations
    # first, which our .onnx files had when they were exported (gacrystal.onnx_io)
    with atomic_path(out) as temporary, quiet_logger():
        quantize_static(str(fp32), str(temporary), calibration_reader(input_name, batches),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], nodes_to_exclude=keep_float)
        model = onnx.load(str(temporary))
        del model.metadata_props[:]
        for entry in source.metadata_props:
            value = entry.value if entry.key != CARD_KEY else json.dumps(
                dict(json.loads(entry.value), quantized=QUANTIZED))
            model.metadata_props.add(key=entry.key, value=value)
        onnx.save(model, str(temporary))


def onnx_features(model_path: Path, image_size: int, resize: str):
    """paths -> the out-of-distribution features (the model's second output) of the images."""
    session = open_session(model_path)
    name = session.get_inputs()[0].name

    def batches(paths):
        for indices, pixels, errors in read_batches(paths, 32, image_size, resize):
            for i, error in zip(indices, errors):
                if error:  # skipping it would pair the features with the wrong labels
                    raise UserError(f"cannot read {paths[i]}: {error}; remove it from the split")
            yield np.stack(pixels).astype(np.float32)

    def features_of(paths, variation):
        pixels = variation(batches(paths)) if variation else batches(paths)
        return np.concatenate([session.run(None, {name: x})[1] for x in pixels])
    return features_of


def fit_int8_ood(int8: Path, sizes: list[int], train_paths: list, train_labels, val_paths: list,
                 image_size: int, resize: str) -> dict:
    """Fits the int8 model's own out-of-distribution statistics (ood.int8.npz) with the recipe
    training uses for the fp32 model's (gacrystal.ood.fit_statistics)."""
    stages, summary = ood.fit_statistics(onnx_features(int8, image_size, resize), train_paths,
                                         train_labels, val_paths, sizes)
    ood.save(stages, int8.parent / OOD_INT8_NPZ)
    return summary


def agreement(reference, quantized, paths: list) -> dict:
    """How far the int8 model's labels and UNKNOWN decisions agree with the fp32 model's."""
    def p_pg_and_scores(classifier):
        records = [r for r in classifier.label(paths, reject=False) if r["p_pg"] is not None]
        scores = np.array([r["ood_score"] for r in records]) if classifier.can_reject else None
        return np.array([r["p_pg"] for r in records]), scores
    p32, ood32 = p_pg_and_scores(reference)
    p8, ood8 = p_pg_and_scores(quantized)
    result = {"images": len(p32),
              "labels_agree": float(np.mean(predicted_labels(p32) == predicted_labels(p8))),
              "largest_p_pg_difference": float(np.abs(p32 - p8).max())}
    if ood32 is not None and ood8 is not None:
        result.update(unknown_agree=float(np.mean((ood32 > 1) == (ood8 > 1))),
                      fp32_rejects=float(np.mean(ood32 > 1)), int8_rejects=float(np.mean(ood8 > 1)))
    return result


def images_per_second(classifier, pixels: np.ndarray, batch=16, repeats=3) -> float:
    """Labelling speed on images already in memory, the median of `repeats` passes."""
    classifier.predict(pixels[:batch])  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(pixels), batch):
            classifier.predict(pixels[i:i + batch])
        times.append(time.perf_counter() - started)
    return len(pixels) / float(np.median(times))
